//! The recovery provider's pages and protocol endpoints (draft §3.1, §3.3, §3.4, §3.6).
//!
//! Handlers extract, call [`dar_recovery_provider::RecoveryProvider`], and map its errors
//! ([`AppError::RecoveryProvider`]); no SQL or cryptography here.
//!
//! - `save-token` (§3.1), POST only (§3.1 "SHOULD reject GET": a GET answers 405). The
//!   account provider's page POSTs it cross-site, so the `SameSite=Lax` session cookie is not
//!   sent: the form is parked server-side (a random id, ten minutes; only the id's hash is
//!   stored) and the browser is sent (303) to `/rp/save?id=...`, a same-origin page that
//!   requires sign-in with both factors (sign-in comes back to it).
//! - `/rp/save` **always** shows the confirmation interstitial, whatever the request's
//!   `confirmation` parameter says: a save is never completed without the signed-in user's
//!   click on a same-origin, unframable page, which defeats session fixation and CSRF against
//!   the save (§6.3.1, §6.5). It warns when the request's `login_hint` or `login_hint_sha256`
//!   names neither the signed-in username nor a verified address of the account
//!   ([`dar_recovery_provider::match_login_hint`]). The interstitial's form carries the CSRF
//!   token; "Save" calls
//!   [`save`](dar_recovery_provider::RecoveryProvider::save), "Do not save"
//!   [`decline_save`](dar_recovery_provider::RecoveryProvider::decline_save), and either way
//!   the browser is sent (303) to the account provider's `save-token-return` the role names.
//!   When `recovery_provider.allowed_account_providers` is set, a token from any other issuer
//!   is declined (`save-failure`) without asking.
//! - `/rp/tokens`: the user's saved tokens, each with a field to rename it and a delete button
//!   (CSRF).
//! - `recover-account` (§3.4), GET and POST, with the `issuer` and `id` hints. A cross-site
//!   POST carries no cookie: it is answered 303 to the GET with the same hints (they are not
//!   secrets). The GET requires sign-in with both factors and lists the matching tokens, one
//!   button each (CSRF). Both it and the button want that sign-in no older than
//!   `recovery_sign_in_max_age_secs` (§6.3.1: exercising a token is a high-risk action); an
//!   older session is sent through sign-in again and comes back to the page. The button calls
//!   [`recover`](dar_recovery_provider::RecoveryProvider::recover) and shows a page whose form
//!   POSTs `countersigned-token` to the account provider's `recover-account-return` (a
//!   visible "Continue" button, no JavaScript).
//! - `save-token-async-api-iframe` (§3.3), when `save_token_async_api_iframe_path` is set: the
//!   one framable page, its script and its JSON endpoint ([`iframe`]).

use askama::Template;
use axum::Router;
use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use dar_core::{Origin, TokenId};
use dar_recovery_provider::{
    LoginHintMatch, MAX_NICKNAME_LEN, RecoverOutcome, RecoverRequest, SaveForm, SaveOptions,
    SaveOutcome, SavePreview, SavedTokenSummary, UserId, check_nickname, match_login_hint,
};
use serde::Deserialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::auth::{SignedInUser, park, parked_id, peek_parked, render, take_parked, with_next};
use crate::error::{AppError, AppForm};
use crate::openapi::{FORM, HTML, TAG_RP};
use crate::security::CsrfForm;
use crate::state::{AppState, RecoveryProviderService};

pub mod iframe;

/// How long a parked save-token request waits for its page (seconds).
const PARK_SECS: i64 = 10 * 60;
const PARK_SAVE_TOKEN: &str = "rp-save-token";
/// Room in a save-token body besides the token: hints, `state`, `obsoletes`.
const SAVE_TOKEN_EXTRA_BYTES: usize = 4 * 1024;

/// The body limit of `save-token` for a `token-max-size`: the base64 token, percent-encoded
/// (about 1.4 times the token's bytes), fits in twice the maximum, plus the other fields.
pub fn save_token_body_limit(token_max_size: usize) -> usize {
    2 * token_max_size + SAVE_TOKEN_EXTRA_BYTES
}

/// The recovery provider's routes, at the paths `state`'s configuration names; empty when
/// the deployment does not play the role.
pub fn routes(state: &AppState) -> Router<AppState> {
    let Some(slot) = &state.roles().recovery_provider else {
        return Router::new();
    };
    let settings = &slot.settings;
    let router = Router::new()
        .route("/rp/save", get(confirm_page).post(confirm))
        .route("/rp/tokens", get(tokens_page))
        .route("/rp/tokens/delete", post(delete_token))
        .route("/rp/tokens/rename", post(rename_token))
        .route("/rp/recover", post(recover))
        .layer(DefaultBodyLimit::max(crate::auth::ACCOUNT_FORM_BODY_LIMIT))
        .route(
            &settings.save_token_path,
            post(save_token)
                .get(save_token_get)
                .layer(DefaultBodyLimit::max(save_token_body_limit(
                    settings.token_max_size,
                ))),
        )
        .route(
            &settings.recover_account_path,
            get(recover_page)
                .post(recover_post)
                .layer(DefaultBodyLimit::max(crate::auth::ACCOUNT_FORM_BODY_LIMIT)),
        );
    match &settings.save_token_async_api_iframe_path {
        Some(path) => router.merge(iframe::routes(path, settings.token_max_size)),
        None => router,
    }
}

fn service(state: &AppState) -> Result<&RecoveryProviderService, AppError> {
    state.recovery_provider().ok_or(AppError::NotConfigured {
        what: "the recovery provider",
    })
}

fn user_id(user: &SignedInUser) -> UserId {
    UserId::new(user.account.to_string())
}

fn parse_origin(state: &AppState, text: &str) -> Result<Origin, AppError> {
    let parsed = if state.development() {
        Origin::parse_development(text)
    } else {
        Origin::parse(text)
    };
    parsed.map_err(|_| AppError::BadRequest {
        message: "`issuer` is not an origin",
    })
}

fn parse_token_id(text: &str) -> Result<TokenId, AppError> {
    TokenId::from_hex(text).map_err(|_| AppError::BadRequest {
        message: "the token id is not 32 hex digits",
    })
}

/// A saved token as the pages show it.
struct TokenView {
    issuer: String,
    token_id: String,
    nickname: String,
}

impl From<SavedTokenSummary> for TokenView {
    fn from(t: SavedTokenSummary) -> Self {
        Self {
            issuer: t.issuer.to_string(),
            token_id: t.token_id.to_string(),
            nickname: t.nickname.unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "rp_confirm_save.html")]
struct ConfirmPage<'a> {
    error: Option<&'a str>,
    csrf_token: String,
    username: &'a str,
    id: &'a str,
    issuer: String,
    token_id: String,
    /// The nickname field's initial value: the account provider's `nickname_hint`, or empty.
    nickname: String,
    nickname_max: usize,
    /// The account provider's login hint names none of this user's contact points.
    hint_differs: bool,
}

#[derive(Template)]
#[template(path = "rp_tokens.html")]
struct TokensPage<'a> {
    error: Option<&'a str>,
    csrf_token: String,
    tokens: Vec<TokenView>,
    nickname_max: usize,
}

#[derive(Template)]
#[template(path = "rp_recover.html")]
struct RecoverPage<'a> {
    error: Option<&'a str>,
    csrf_token: String,
    tokens: Vec<TokenView>,
}

#[derive(Template)]
#[template(path = "rp_send_countersigned.html")]
struct SendCountersignedPage<'a> {
    error: Option<&'a str>,
    issuer: &'a str,
    countersigned_id: String,
    action: &'a str,
    token: &'a str,
}

/// The §3.1 save-token parameters, as posted.
#[derive(Deserialize, Default, ToSchema)]
struct SaveTokenFields {
    // Optional here so that its absence gets the endpoint's own 400; required on the wire.
    #[schema(value_type = String, required = true)]
    token: Option<String>,
    login_hint: Option<String>,
    login_hint_sha256: Option<String>,
    nickname_hint: Option<String>,
    confirmation: Option<String>,
    obsoletes: Option<String>,
    state: Option<String>,
}

impl SaveTokenFields {
    fn pairs(&self) -> Vec<(&'static str, &str)> {
        let fields = [
            ("token", &self.token),
            ("login_hint", &self.login_hint),
            ("login_hint_sha256", &self.login_hint_sha256),
            ("nickname_hint", &self.nickname_hint),
            ("confirmation", &self.confirmation),
            ("obsoletes", &self.obsoletes),
            ("state", &self.state),
        ];
        fields
            .into_iter()
            .filter_map(|(k, v)| v.as_deref().map(|v| (k, v)))
            .collect()
    }

    fn into_form(self) -> Result<SaveForm, AppError> {
        let token = self.token.ok_or(AppError::BadRequest {
            message: "the form lacks `token`",
        })?;
        let mut form = SaveForm::with_token(token);
        form.login_hint = self.login_hint;
        form.login_hint_sha256 = self.login_hint_sha256;
        form.nickname_hint = self.nickname_hint;
        form.confirmation = self.confirmation;
        form.obsoletes = self.obsoletes;
        form.state = self.state;
        Ok(form)
    }
}

/// §3.1: the cross-site POST. Park it; continue on a same-origin page.
#[utoipa::path(
    post, path = crate::config::DEFAULT_SAVE_TOKEN, tag = TAG_RP,
    summary = "save-token (§3.1)",
    request_body(content = SaveTokenFields, content_type = FORM),
    responses(
        (
            status = 303,
            description = "Parked (no cookie comes with a cross-site POST): to `/rp/save?id=...`, \
                which asks the signed-in user (§3.1).",
            headers(("Location" = String)),
        ),
        (status = 400, description = "The form lacks `token`."),
        (status = 413, description = "The body is over twice `token-max-size` plus 4 KiB."),
    ),
)]
async fn save_token(
    State(state): State<AppState>,
    AppForm(fields): AppForm<SaveTokenFields>,
) -> Result<Response, AppError> {
    if fields.token.is_none() {
        return Err(AppError::BadRequest {
            message: "the form lacks `token`",
        });
    }
    let payload =
        serde_urlencoded::to_string(fields.pairs()).map_err(|_| AppError::BadRequest {
            message: "the form is malformed",
        })?;
    let id = park(&state, PARK_SAVE_TOKEN, &payload, PARK_SECS).await?;
    Ok(Redirect::to(&format!("/rp/save?id={id}")).into_response())
}

/// §3.1: "SHOULD reject GET" (a token must not travel in a URL).
#[utoipa::path(
    get, path = crate::config::DEFAULT_SAVE_TOKEN, tag = TAG_RP,
    summary = "save-token refuses GET (§3.1)",
    responses(
        (
            status = 405,
            description = "POST only: a token must not travel in a URL (§3.1).",
            headers(("Allow" = String, description = "`POST`")),
        ),
    ),
)]
async fn save_token_get() -> Response {
    let error = AppError::WrongMethod {
        message: "save-token accepts POST only: a token must not travel in a URL (§3.1)",
    };
    ([(header::ALLOW, "POST")], error).into_response()
}

fn parked_form(payload: &str) -> Result<SaveForm, AppError> {
    serde_urlencoded::from_str::<SaveTokenFields>(payload)
        .map_err(|_| AppError::BadRequest {
            message: "the parked form is malformed",
        })?
        .into_form()
}

/// Where a finished save sends the browser: the account provider's save-token-return.
fn after_save(outcome: SaveOutcome) -> Result<Response, AppError> {
    match outcome {
        SaveOutcome::Saved { redirect, .. } | SaveOutcome::Refused { redirect, .. } => {
            Ok(Redirect::to(&redirect.location()).into_response())
        }
        SaveOutcome::ConfirmationRequired(_) => Err(AppError::BadRequest {
            message: "the save was not confirmed",
        }),
    }
}

/// Whether `issuer` may save tokens here (`recovery_provider.allowed_account_providers`;
/// absent: any account provider whose configuration can be fetched).
fn issuer_allowed(state: &AppState, issuer: &Origin) -> bool {
    state
        .roles()
        .recovery_provider
        .as_ref()
        .and_then(|slot| slot.settings.allowed_account_providers.as_ref())
        .is_none_or(|allowed| allowed.contains(issuer))
}

/// Runs the role's checks without storing anything, by requiring confirmation.
async fn preview(
    rp: &RecoveryProviderService,
    user: &UserId,
    form: &SaveForm,
    now: OffsetDateTime,
) -> Result<SaveOutcome, AppError> {
    let mut form = form.clone();
    form.confirmation = Some("required".to_owned());
    Ok(rp.save(user, &form, SaveOptions::default(), now).await?)
}

/// The interstitial, always (see the module docs).
#[utoipa::path(
    get, path = "/rp/save", tag = TAG_RP,
    summary = "Confirm a save: the interstitial (§3.1)",
    params(("id" = String, Query, description = "The parked `save-token`'s id.")),
    responses(
        (
            status = 200,
            description = "The confirmation interstitial (always shown before a save).",
            content_type = HTML,
            body = String,
        ),
        (
            status = 303,
            description = "Not signed in with both factors: to `/signin` (which comes back); or \
                the save was refused or declined: to the account provider's `save-token-return`.",
            headers(("Location" = String)),
        ),
        (status = 400, description = "The parked token is refused (§3.1)."),
        (status = 404, description = "No `id`, or unknown, expired or used."),
        (status = 413, description = "The token is over `token-max-size`."),
        (status = 502, description = "The account provider's configuration could not be fetched."),
    ),
)]
async fn confirm_page(
    State(state): State<AppState>,
    user: SignedInUser,
    RawQuery(query): RawQuery,
) -> Result<Response, AppError> {
    let id = parked_id(query.as_deref())?;
    let rp = service(&state)?;
    let payload = peek_parked(&state, PARK_SAVE_TOKEN, &id)
        .await?
        .ok_or(AppError::NotFound)?;
    let form = parked_form(&payload)?;
    let (user_id, now) = (user_id(&user), state.now());
    match preview(rp, &user_id, &form, now).await {
        // An account provider this deployment does not accept tokens from: declined.
        Ok(SaveOutcome::ConfirmationRequired(preview))
            if !issuer_allowed(&state, &preview.issuer) =>
        {
            take_parked(&state, PARK_SAVE_TOKEN, &id).await?;
            let confirmed = SaveOptions {
                binding: None,
                confirmed: true,
            };
            after_save(rp.decline_save(&user_id, &form, confirmed, now).await?)
        }
        Ok(SaveOutcome::ConfirmationRequired(preview)) => {
            let hint_differs =
                login_hint_match(&state, &user, &preview).await? == LoginHintMatch::Differs;
            let page = ConfirmPage {
                error: None,
                csrf_token: user.session.csrf_token(),
                username: &user.username,
                id: &id,
                issuer: preview.issuer.to_string(),
                token_id: preview.token_id.to_string(),
                nickname: preview.nickname_hint.unwrap_or_default(),
                nickname_max: MAX_NICKNAME_LEN,
                hint_differs,
            };
            render(StatusCode::OK, &page)
        }
        // Refused (or already saved): the request is finished; send the user back.
        Ok(outcome) => {
            take_parked(&state, PARK_SAVE_TOKEN, &id).await?;
            after_save(outcome)
        }
        Err(e) => {
            take_parked(&state, PARK_SAVE_TOKEN, &id).await?;
            Err(e)
        }
    }
}

#[derive(Deserialize, ToSchema)]
struct ConfirmForm {
    action: String,
    /// The nickname the user chose for the token (§3.1.1 step 12); empty for none. Absent: the
    /// account provider's `nickname_hint` is kept.
    #[serde(default)]
    nickname: Option<String>,
}

#[utoipa::path(
    post, path = "/rp/save", tag = TAG_RP,
    summary = "Save or decline (§3.1)",
    params(("id" = String, Query, description = "The parked `save-token`'s id.")),
    request_body(content = ConfirmForm, content_type = FORM),
    responses(
        (
            status = 303,
            description = "Saved or declined: to the account provider's `save-token-return` \
                (§3.2); or not signed in: to `/signin`.",
            headers(("Location" = String)),
        ),
        (
            status = 400,
            description = "The parked token is refused (§3.1), or (saving) the nickname is over \
                `MAX_NICKNAME_LEN` bytes or holds control characters; then the parked request \
                stays, to be confirmed again.",
        ),
        (status = 404, description = "No `id`, or unknown, expired or used."),
        (status = 502, description = "The account provider's configuration could not be fetched."),
    ),
)]
async fn confirm(
    State(state): State<AppState>,
    user: SignedInUser,
    RawQuery(query): RawQuery,
    CsrfForm { form, .. }: CsrfForm<ConfirmForm>,
) -> Result<Response, AppError> {
    let id = parked_id(query.as_deref())?;
    let rp = service(&state)?;
    // Checked before the parked request is taken, so the user can go back and fix it.
    let nickname = match form.nickname.as_deref().filter(|_| form.action == "save") {
        Some(text) => Some(check_nickname(text).map_err(|_| AppError::BadRequest {
            message: "the nickname is too long or holds control characters",
        })?),
        None => None,
    };
    let payload = take_parked(&state, PARK_SAVE_TOKEN, &id)
        .await?
        .ok_or(AppError::NotFound)?;
    let mut save_form = parked_form(&payload)?;
    if let Some(nickname) = nickname {
        save_form.nickname_hint = nickname;
    }
    let (user_id, now) = (user_id(&user), state.now());
    let confirmed = SaveOptions {
        binding: None,
        confirmed: true,
    };
    let allowed = match preview(rp, &user_id, &save_form, now).await? {
        SaveOutcome::ConfirmationRequired(preview) => issuer_allowed(&state, &preview.issuer),
        // Refused or already saved: the role answers the same again below.
        _ => true,
    };
    let outcome = if form.action == "save" && allowed {
        rp.save(&user_id, &save_form, confirmed, now).await?
    } else {
        rp.decline_save(&user_id, &save_form, confirmed, now)
            .await?
    };
    after_save(outcome)
}

#[utoipa::path(
    get, path = "/rp/tokens", tag = TAG_RP,
    summary = "Saved tokens",
    responses(
        (
            status = 200,
            description = "The user's saved tokens.",
            content_type = HTML,
            body = String,
        ),
        (
            status = 303,
            description = "Not signed in with both factors: to `/signin`.",
            headers(("Location" = String)),
        ),
    ),
)]
async fn tokens_page(
    State(state): State<AppState>,
    user: SignedInUser,
) -> Result<Response, AppError> {
    let rp = service(&state)?;
    let tokens = rp.list(&user_id(&user)).await?;
    let page = TokensPage {
        error: None,
        csrf_token: user.session.csrf_token(),
        tokens: tokens.into_iter().map(TokenView::from).collect(),
        nickname_max: MAX_NICKNAME_LEN,
    };
    render(StatusCode::OK, &page)
}

/// How the save's login hints (§3.1) compare with the signed-in user's username and verified
/// addresses (unverified ones could be anyone's, so they never silence the warning).
async fn login_hint_match(
    state: &AppState,
    user: &SignedInUser,
    preview: &SavePreview,
) -> Result<LoginHintMatch, AppError> {
    if preview.login_hint.is_none() && preview.login_hint_sha256.is_none() {
        return Ok(LoginHintMatch::NoHint);
    }
    let store = crate::auth::store(state)?;
    let addresses = crate::notify::verified_addresses(store, user.account).await?;
    let points: Vec<&str> = std::iter::once(user.username.as_str())
        .chain(addresses.iter().map(String::as_str))
        .collect();
    Ok(match_login_hint(
        preview.login_hint.as_deref(),
        preview.login_hint_sha256.as_deref(),
        &points,
    ))
}

#[derive(Deserialize, ToSchema)]
struct TokenForm {
    issuer: String,
    token_id: String,
}

impl TokenForm {
    /// The token the form names: its issuer (an origin) and its id (32 hex digits).
    fn target(&self, state: &AppState) -> Result<(Origin, TokenId), AppError> {
        Ok((
            parse_origin(state, &self.issuer)?,
            parse_token_id(&self.token_id)?,
        ))
    }
}

#[utoipa::path(
    post, path = "/rp/tokens/delete", tag = TAG_RP,
    summary = "Delete a saved token",
    request_body(content = TokenForm, content_type = FORM),
    responses(
        (
            status = 303,
            description = "Deleted: to `/rp/tokens`; or not signed in: to `/signin`.",
            headers(("Location" = String)),
        ),
        (status = 400, description = "`issuer` is not an origin, or `token_id` not 32 hex digits."),
        (status = 404, description = "The user has no such token."),
    ),
)]
async fn delete_token(
    State(state): State<AppState>,
    user: SignedInUser,
    CsrfForm { form, .. }: CsrfForm<TokenForm>,
) -> Result<Response, AppError> {
    let rp = service(&state)?;
    let (issuer, token_id) = form.target(&state)?;
    rp.delete(&user_id(&user), &issuer, token_id, state.now())
        .await?;
    Ok(Redirect::to("/rp/tokens").into_response())
}

#[derive(Deserialize, ToSchema)]
struct RenameForm {
    #[serde(flatten)]
    token: TokenForm,
    /// The new name (trimmed; empty clears it; at most `MAX_NICKNAME_LEN` bytes, no control
    /// characters).
    nickname: String,
}

#[utoipa::path(
    post, path = "/rp/tokens/rename", tag = TAG_RP,
    summary = "Rename a saved token",
    request_body(content = RenameForm, content_type = FORM),
    responses(
        (
            status = 303,
            description = "Renamed: to `/rp/tokens`; or not signed in: to `/signin`.",
            headers(("Location" = String)),
        ),
        (
            status = 400,
            description = "`issuer` is not an origin, `token_id` not 32 hex digits, or the \
                           nickname too long or holding control characters.",
        ),
        (status = 404, description = "The user has no such token."),
    ),
)]
async fn rename_token(
    State(state): State<AppState>,
    user: SignedInUser,
    CsrfForm { form, .. }: CsrfForm<RenameForm>,
) -> Result<Response, AppError> {
    let rp = service(&state)?;
    let (issuer, token_id) = form.token.target(&state)?;
    rp.rename(&user_id(&user), &issuer, token_id, &form.nickname)
        .await?;
    Ok(Redirect::to("/rp/tokens").into_response())
}

#[derive(Deserialize, Default, ToSchema)]
struct RecoverHints {
    issuer: Option<String>,
    id: Option<String>,
}

/// §3.4 by cross-site POST: no cookie; continue with a GET carrying the same hints.
#[utoipa::path(
    post, path = crate::config::DEFAULT_RECOVER_ACCOUNT, tag = TAG_RP,
    summary = "recover-account by cross-site POST (§3.4)",
    request_body(content = RecoverHints, content_type = FORM),
    responses(
        (
            status = 303,
            description = "A cross-site POST carries no cookie: to the GET with the same hints.",
            headers(("Location" = String)),
        ),
    ),
)]
async fn recover_post(
    State(state): State<AppState>,
    AppForm(hints): AppForm<RecoverHints>,
) -> Result<Response, AppError> {
    let to = recover_page_url(&state, hints.issuer.as_deref(), hints.id.as_deref())?;
    Ok(Redirect::to(&to).into_response())
}

/// This deployment's recover-account page with the hints given.
fn recover_page_url(
    state: &AppState,
    issuer: Option<&str>,
    id: Option<&str>,
) -> Result<String, AppError> {
    let pairs: Vec<(&str, &str)> = [("issuer", issuer), ("id", id)]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect();
    let query = serde_urlencoded::to_string(pairs).map_err(|_| AppError::BadRequest {
        message: "the form is malformed",
    })?;
    let path = state
        .roles()
        .recovery_provider
        .as_ref()
        .map_or("/", |slot| slot.settings.recover_account_path.as_str());
    Ok(if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    })
}

/// §6.3.1: exercising a token is a high-risk action, so it needs a sign-in (password and
/// second factor) no older than `recovery_sign_in_max_age_secs`. An older session is sent
/// through sign-in again, which starts a new session and comes back to `next`; `None` when the
/// sign-in is recent enough.
fn sign_in_again_if_stale(state: &AppState, user: &SignedInUser, next: &str) -> Option<Response> {
    let max_age = state
        .roles()
        .recovery_provider
        .as_ref()
        .map(|slot| slot.settings.recovery_sign_in_max_age)?;
    let age = state
        .now()
        .unix_timestamp()
        .saturating_sub(user.signed_in_at);
    let max_age = i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX);
    (age > max_age).then(|| Redirect::to(&with_next("/signin", next)).into_response())
}

/// §3.4 step 2: the user's tokens matching the hints, one button each.
#[utoipa::path(
    get, path = crate::config::DEFAULT_RECOVER_ACCOUNT, tag = TAG_RP,
    summary = "recover-account: matching tokens (§3.4)",
    params(
        (
            "issuer" = Option<String>,
            Query,
            description = "The account provider's origin (a hint, §3.4).",
        ),
        ("id" = Option<String>, Query, description = "The token id (a hint, 32 hex digits)."),
    ),
    responses(
        (
            status = 200,
            description = "The user's tokens matching the hints, one button each.",
            content_type = HTML,
            body = String,
        ),
        (
            status = 303,
            description = "Not signed in with both factors, or signed in longer ago than \
                `recovery_sign_in_max_age_secs` (§6.3.1): to `/signin` (which comes back).",
            headers(("Location" = String)),
        ),
        (
            status = 400,
            description = "The query is malformed, `issuer` is not an origin, or `id` not 32 hex \
                digits.",
        ),
    ),
)]
async fn recover_page(
    State(state): State<AppState>,
    user: SignedInUser,
    RawQuery(query): RawQuery,
) -> Result<Response, AppError> {
    let rp = service(&state)?;
    let hints: RecoverHints =
        serde_urlencoded::from_str(query.as_deref().unwrap_or("")).map_err(|_| {
            AppError::BadRequest {
                message: "the query is malformed",
            }
        })?;
    let here = recover_page_url(&state, hints.issuer.as_deref(), hints.id.as_deref())?;
    if let Some(sign_in) = sign_in_again_if_stale(&state, &user, &here) {
        return Ok(sign_in);
    }
    let issuer = hints
        .issuer
        .as_deref()
        .map(|i| parse_origin(&state, i))
        .transpose()?;
    let id = hints.id.as_deref().map(parse_token_id).transpose()?;
    let tokens = rp
        .list(&user_id(&user))
        .await?
        .into_iter()
        .filter(|t| issuer.as_ref().is_none_or(|i| *i == t.issuer))
        .filter(|t| id.is_none_or(|id| id == t.token_id))
        .map(TokenView::from)
        .collect();
    let page = RecoverPage {
        error: None,
        csrf_token: user.session.csrf_token(),
        tokens,
    };
    render(StatusCode::OK, &page)
}

/// §3.4 steps 2–5: countersign the chosen token; the user carries it to the account provider.
#[utoipa::path(
    post, path = "/rp/recover", tag = TAG_RP,
    summary = "Countersign a token (§3.4)",
    request_body(content = TokenForm, content_type = FORM),
    responses(
        (
            status = 200,
            description = "Countersigned: a page whose form POSTs `countersigned-token` to the \
                account provider's `recover-account-return` (§3.4).",
            content_type = HTML,
            body = String,
        ),
        (
            status = 303,
            description = "Not signed in with both factors: to `/signin`; or signed in longer ago \
                than `recovery_sign_in_max_age_secs` (§6.3.1): to `/signin`, which comes back to \
                the recover-account page for this token. Nothing is countersigned then.",
            headers(("Location" = String)),
        ),
        (
            status = 400,
            description = "`issuer` is not an origin, `token_id` not 32 hex digits, or several \
                tokens match.",
        ),
        (status = 404, description = "The user has no such token."),
        (status = 502, description = "The account provider's configuration could not be fetched."),
    ),
)]
async fn recover(
    State(state): State<AppState>,
    user: SignedInUser,
    CsrfForm { form, .. }: CsrfForm<TokenForm>,
) -> Result<Response, AppError> {
    let rp = service(&state)?;
    let (issuer, token_id) = form.target(&state)?;
    let page = recover_page_url(&state, Some(issuer.as_str()), Some(&token_id.to_string()))?;
    if let Some(sign_in) = sign_in_again_if_stale(&state, &user, &page) {
        return Ok(sign_in);
    }
    let request = RecoverRequest {
        issuer_hint: Some(&issuer),
        id_hint: Some(token_id),
        binding: None,
        low_friction_auth: false,
    };
    let outcome = rp
        .recover(
            &user_id(&user),
            &request,
            state.now(),
            &mut getrandom::SysRng,
        )
        .await?;
    let RecoverOutcome::Countersigned(recovery) = outcome else {
        return Err(AppError::BadRequest {
            message: "several tokens match: choose one",
        });
    };
    let action = recovery.post_to.as_string();
    let page = SendCountersignedPage {
        error: None,
        issuer: recovery.issuer.as_str(),
        countersigned_id: recovery.countersigned_id.to_string(),
        action: &action,
        token: &recovery.countersigned_token,
    };
    render(StatusCode::OK, &page)
}

#[cfg(test)]
mod tests;
