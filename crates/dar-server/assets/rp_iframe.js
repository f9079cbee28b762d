// The recovery provider's save-token-async-api-iframe script (draft-hill-delegated-recovery
// §3.3). The rules it follows are documented in crates/dar-server/src/rp/iframe.rs.
'use strict';

(function () {
  const KIND = 'delegated-account-recovery-api-message';
  const SAVES = ['save-token', 'save-token-no-navigation', 'save-token-async-only'];
  const OPTIONAL = ['login_hint', 'nickname_hint', 'obsoletes', 'state'];

  const root = document.getElementById('dar-save-api');
  if (!root || window.parent === window) {
    return;
  }
  let allowed = [];
  try {
    const parsed = JSON.parse(root.dataset.allowedOrigins || '[]');
    if (Array.isArray(parsed)) {
      allowed = parsed.filter(function (o) { return typeof o === 'string'; });
    }
  } catch (e) {
    allowed = [];
  }
  const signedIn = root.dataset.signedIn === 'true';
  const csrfToken = root.dataset.csrfToken || '';
  const saveEndpoint = root.dataset.saveEndpoint;
  const saveTokenUrl = root.dataset.saveTokenUrl;

  // Posts `fields` of message type `type` to the parent at exactly `origin`.
  function post(origin, type, fields, request) {
    const message = Object.assign({}, fields);
    message[KIND] = type;
    if (request.id !== undefined) {
      message['in-reply-to'] = request.id;
    }
    window.parent.postMessage(message, origin);
  }

  // The request as an object, or null when it is not one of this API's requests.
  function parse(data) {
    let request = data;
    if (typeof request === 'string') {
      try {
        request = JSON.parse(request);
      } catch (e) {
        return null;
      }
    }
    if (request === null || typeof request !== 'object' || Array.isArray(request)) {
      return null;
    }
    const type = request[KIND];
    if (type !== 'get-binding' && SAVES.indexOf(type) < 0) {
      return null;
    }
    const id = request.id;
    if (id !== undefined && typeof id !== 'string' && typeof id !== 'number') {
      return null;
    }
    return request;
  }

  // The save's form fields, or null when a property has the wrong type.
  function saveFields(request, origin) {
    if (typeof request.token !== 'string' || request.token === '') {
      return null;
    }
    const fields = { token: request.token };
    for (const name of OPTIONAL) {
      const value = request[name];
      if (value === undefined) {
        continue;
      }
      if (typeof value !== 'string') {
        return null;
      }
      fields[name] = value;
    }
    // §3.3.1.2, §3.3.1.3: only the navigating save passes `state` on.
    if (request[KIND] !== 'save-token') {
      delete fields.state;
    }
    fields.origin = origin;
    return fields;
  }

  // The same-origin POST to the endpoint; resolves to its JSON answer (or a failure).
  function send(fields, keepalive) {
    const body = new URLSearchParams(fields);
    body.set('csrf_token', csrfToken);
    return fetch(saveEndpoint, {
      method: 'POST',
      body: body,
      credentials: 'same-origin',
      headers: { Accept: 'application/json' },
      keepalive: keepalive,
      redirect: 'error',
    }).then(function (response) {
      const type = response.headers.get('content-type') || '';
      return type.indexOf('application/json') === 0 ? response.json() : {};
    }).catch(function () {
      return {};
    });
  }

  // The interactive flow: the save-token form POSTed into the parent's browsing context.
  function interactive(fields) {
    const form = document.createElement('form');
    form.method = 'post';
    form.action = saveTokenUrl;
    form.target = '_parent';
    for (const name of ['token'].concat(OPTIONAL)) {
      if (fields[name] !== undefined) {
        const input = document.createElement('input');
        input.type = 'hidden';
        input.name = name;
        input.value = fields[name];
        form.appendChild(input);
      }
    }
    document.body.appendChild(form);
    form.submit();
  }

  function save(request, origin) {
    const type = request[KIND];
    const fields = saveFields(request, origin);
    if (fields === null) {
      if (type !== 'save-token') {
        const result = type === 'save-token-async-only' ? 'done' : 'save-token-failure';
        post(origin, 'save-token-result', { result: result }, request);
      }
      return;
    }
    if (type === 'save-token-async-only') {
      if (signedIn) {
        send(fields, true);
      }
      post(origin, 'save-token-result', { result: 'done' }, request);
      return;
    }
    if (!signedIn) {
      if (type === 'save-token') {
        interactive(fields);
      } else {
        post(origin, 'save-token-result', { result: 'save-token-failure' }, request);
      }
      return;
    }
    send(fields, false).then(function (answer) {
      const saved = answer.result === 'save-token-success';
      if (type === 'save-token-no-navigation') {
        const result = saved ? 'save-token-success' : 'save-token-failure';
        post(origin, 'save-token-result', { result: result }, request);
      } else if (saved && typeof answer.redirect === 'string') {
        window.parent.location.href = answer.redirect;
      } else {
        interactive(fields);
      }
    });
  }

  window.addEventListener('message', function (event) {
    if (event.source !== window.parent || allowed.indexOf(event.origin) < 0) {
      return;
    }
    const request = parse(event.data);
    if (request === null) {
      return;
    }
    if (request[KIND] === 'get-binding') {
      post(event.origin, 'binding', { binding: '' }, request);
    } else {
      save(request, event.origin);
    }
  });

  // §3.3.1: `ready` on load, addressed to each listed origin in turn; only the parent's own
  // origin receives it.
  for (const origin of allowed) {
    post(origin, 'ready', {}, {});
  }
})();
