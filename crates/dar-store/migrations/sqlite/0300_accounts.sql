-- Web accounts (03xx): the users both roles' pages sign in, and their sessions. Times are unix
-- seconds (integer).
--
-- totp_secret is a shared secret (RFC 6238): anyone who reads it can compute the user's codes.
-- A deployment should encrypt this column or the disk the database lives on.
create table web_user (
    web_user_id integer primary key,
    username text not null,
    password_hash text not null,
    totp_secret text,
    totp_confirmed integer not null default 0 check (totp_confirmed in (0, 1)),
    totp_last_step integer,
    password_failures integer not null default 0,
    totp_failures integer not null default 0,
    created_at integer not null,
    constraint web_user_username_key unique (username)
);

-- Sessions, keyed by the SHA-256 of the random session id the cookie carries, so a copy of the
-- table does not hold usable session ids. A revoked row stays revoked on every instance.
create table web_session (
    session_hash text primary key,
    web_user_id integer not null references web_user (web_user_id),
    created_at integer not null,
    last_seen integer not null,
    second_factor_ok integer not null default 0 check (second_factor_ok in (0, 1)),
    revoked integer not null default 0 check (revoked in (0, 1))
);
create index web_session_user_idx on web_session (web_user_id);

-- Cross-site protocol requests parked until the user's same-origin page (which carries the
-- SameSite=Lax session cookie) takes them, once, before they expire. Keyed by the SHA-256 of
-- the random id in that page's URL; the payload is the request's form body.
create table web_parked_request (
    parked_hash text primary key,
    kind text not null,
    payload text not null,
    created_at integer not null,
    expires_at integer not null
);
create index web_parked_request_expires_idx on web_parked_request (expires_at);
