//! [`AccountProvider`]: issuing recovery tokens (§3.1), the save-token round trip (§3.2),
//! status callbacks (§3.6) and accepting countersigned tokens (§3.5).

use core::fmt;
use std::net::IpAddr;

use base64::Engine as _;
use dar_core::{
    Configuration, CountersignedToken, EndpointUrl, Issue, MAX_TOKEN_LEN, Misuse, Options, Origin,
    Payload, Purpose, ReturnCheck, SealContext, TokenId, decode_base64,
};
use dar_discovery::{ConfigSource, DiscoveryError};
use rand_core::TryCryptoRng;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

use crate::error::AccountProviderError;
use crate::keyring::KeyRing;
use crate::settings::Settings;
use crate::store::{
    AccountProviderStore, AuditEntry, AuditEvent, EvidenceHandoff, PendingSave, Purged,
    RecoveryCommit, RevocationReason, TokenRecord, TokenState, Transition,
};

/// Domain-separation labels of the hashes the store keeps.
const SECRET_LABEL: &[u8] = b"dar/ap/payload-secret/v1";
const STATE_LABEL: &[u8] = b"dar/ap/save-state/v1";
const SESSION_LABEL: &[u8] = b"dar/ap/session/v1";
/// A state value is 43 characters (32 random bytes, base64url); anything much longer is not
/// one of ours and is refused before hashing.
const MAX_STATE_LEN: usize = 128;
/// How often a compare-and-set state change is retried after losing a race.
const TRANSITION_ATTEMPTS: usize = 3;

/// The account provider role: issues recovery tokens, follows what recovery providers report
/// about them, and turns a countersigned token into [`RecoveryEvidence`].
///
/// It takes its store, its discovery source, the time and the randomness as parameters, so
/// every rule runs with a fixed clock and fixed keys in tests.
///
/// ```
/// use dar_account_provider::*;
/// use dar_core::{EndpointUrl, Origin, SealingKey, SigningKey};
/// use dar_discovery::StaticConfigSource;
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let settings = Settings::new(
///     Origin::parse("https://ap.example.com")?,
///     EndpointUrl::parse("https://ap.example.com/dar/save-return", false)?,
///     EndpointUrl::parse("https://ap.example.com/dar/recover-return", false)?,
/// )
/// .with_recovery_provider(KnownRecoveryProvider::new(Origin::parse("https://rp.example.net")?));
/// let keys = KeyRing::new(SigningKey::from_scalar_bytes(&[7; 32])?, SealingKey::new(1, [9; 32]))?;
/// let ap = AccountProvider::new(settings, keys, MemoryStore::new(), StaticConfigSource::new());
/// // What to publish at /.well-known/delegated-account-recovery/configuration (§2):
/// let doc = ap.configuration().to_json();
/// assert_eq!(doc["issuer"], "https://ap.example.com");
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct AccountProvider<S, C> {
    settings: Settings,
    keys: KeyRing,
    store: S,
    discovery: C,
}

/// How to issue a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IssueOptions {
    /// Ask the recovery provider for status callbacks (§3.6.1 status_requested). Default:
    /// true, so that deletions and repudiations reach this provider.
    pub status_requested: bool,
    /// Ask for low friction (§6.4). Default: false.
    pub low_friction: bool,
    /// What the token recovers (§5). Default: the account.
    pub purpose: Purpose,
    /// The token this one replaces (§3.1 `obsoletes`): revoked once this one is saved.
    pub obsoletes: Option<TokenId>,
}

impl Default for IssueOptions {
    fn default() -> Self {
        Self {
            status_requested: true,
            low_friction: false,
            purpose: Purpose::AccountRecovery,
            obsoletes: None,
        }
    }
}

/// What the server needs to have the user agent POST a new token to the recovery provider's
/// save-token endpoint (§3.1 AP step 8). Holds the token and the state: `Debug` shows neither.
pub struct SaveTokenRequest {
    save_token_url: EndpointUrl,
    token: String,
    state: String,
    token_id: TokenId,
    obsoletes: Option<TokenId>,
}

impl SaveTokenRequest {
    /// The recovery provider's `save-token` URL (from its configuration).
    pub fn save_token_url(&self) -> &EndpointUrl {
        &self.save_token_url
    }

    /// The token, standard base64 (§3.1 `token`).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The single-use `state` value (§3.1 `state`), bound to the user's session.
    pub fn state(&self) -> &str {
        &self.state
    }

    /// The new token's id.
    pub fn token_id(&self) -> TokenId {
        self.token_id
    }

    /// The token this one replaces (§3.1 `obsoletes`).
    pub fn obsoletes(&self) -> Option<TokenId> {
        self.obsoletes
    }

    /// The fields of the `application/x-www-form-urlencoded` POST body (§3.1): `token`,
    /// `state`, and `obsoletes` (hex) when set.
    pub fn form_fields(&self) -> Vec<(&'static str, String)> {
        let mut fields = vec![("token", self.token.clone()), ("state", self.state.clone())];
        if let Some(old) = self.obsoletes {
            fields.push(("obsoletes", old.to_string()));
        }
        fields
    }
}

impl fmt::Debug for SaveTokenRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaveTokenRequest")
            .field("save_token_url", &self.save_token_url.as_string())
            .field("token_id", &self.token_id)
            .field("obsoletes", &self.obsoletes)
            .finish_non_exhaustive()
    }
}

/// The outcome of a save-token-return (§3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaveReturn {
    /// The token the round trip was for.
    pub token_id: TokenId,
    /// Its state afterwards.
    pub state: TokenState,
}

/// A token-status request as received (§3.6.1): the form fields, unparsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenStatusForm<'a> {
    /// `id`: the hex token id.
    pub id: &'a str,
    /// `status`: one of the five events.
    pub status: &'a str,
    /// `countersigned_id`: with `recovery-repudiated`, the hex id of the countersigned token.
    pub countersigned_id: Option<&'a str>,
}

/// A lifecycle event (§3.2 `status`, §3.6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusEvent {
    /// `save-success`.
    SaveSuccess,
    /// `save-failure`.
    SaveFailure,
    /// `deleted`.
    Deleted,
    /// `token-repudiated`.
    TokenRepudiated,
    /// `recovery-repudiated`, with the countersigned id when given.
    RecoveryRepudiated(Option<TokenId>),
}

impl StatusEvent {
    /// Parses a §3.6.1 status and its optional `countersigned_id`.
    ///
    /// # Errors
    ///
    /// [`AccountProviderError::MalformedStatus`] for an unknown status, or a countersigned id
    /// that is not 32 hex digits.
    pub fn parse(
        status: &str,
        countersigned_id: Option<&str>,
    ) -> Result<Self, AccountProviderError> {
        Ok(match status {
            "save-success" => Self::SaveSuccess,
            "save-failure" => Self::SaveFailure,
            "deleted" => Self::Deleted,
            "token-repudiated" => Self::TokenRepudiated,
            "recovery-repudiated" => Self::RecoveryRepudiated(
                countersigned_id
                    .map(TokenId::from_hex)
                    .transpose()
                    .map_err(|_| AccountProviderError::MalformedStatus)?,
            ),
            _ => return Err(AccountProviderError::MalformedStatus),
        })
    }
}

/// A verified countersigned token, matched to the token this provider issued and recorded as
/// a recovery (§3.5 steps 1–16). Evidence for a lockout-recovery policy to weigh (§3.5 step
/// 15, §6.3.2), not an unlocked account. Only [`AccountProvider::accept_countersigned`] builds
/// one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryEvidence {
    account_id: String,
    recovery_provider: Origin,
    token_id: TokenId,
    countersigned_id: TokenId,
    low_friction: bool,
    token_age: Duration,
    purpose: Purpose,
    recovered_at: OffsetDateTime,
}

impl RecoveryEvidence {
    /// The account the token recovers (from the sealed payload, matched to the record).
    pub fn account_id(&self) -> &str {
        &self.account_id
    }

    /// The recovery provider that countersigned.
    pub fn recovery_provider(&self) -> &Origin {
        &self.recovery_provider
    }

    /// The recovery token's id.
    pub fn token_id(&self) -> TokenId {
        self.token_id
    }

    /// The countersigned token's id (what a `recovery-repudiated` names).
    pub fn countersigned_id(&self) -> TokenId {
        self.countersigned_id
    }

    /// Whether the recovery provider reported low friction (§6.4): its re-authentication was
    /// weaker than a recovery would need.
    pub fn low_friction(&self) -> bool {
        self.low_friction
    }

    /// How long ago the recovery token was issued.
    pub fn token_age(&self) -> Duration {
        self.token_age
    }

    /// What the token recovers (§5).
    pub fn purpose(&self) -> Purpose {
        self.purpose
    }

    /// When the countersigned token was accepted.
    pub fn recovered_at(&self) -> OffsetDateTime {
        self.recovered_at
    }
}

impl<S, C> AccountProvider<S, C>
where
    S: AccountProviderStore,
    C: ConfigSource,
{
    /// An account provider with these settings, keys, store and discovery source.
    pub fn new(settings: Settings, keys: KeyRing, store: S, discovery: C) -> Self {
        Self {
            settings,
            keys,
            store,
            discovery,
        }
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The key ring.
    pub fn key_ring(&self) -> &KeyRing {
        &self.keys
    }

    /// The key ring, to rotate keys.
    pub fn key_ring_mut(&mut self) -> &mut KeyRing {
        &mut self.keys
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// This provider's configuration document (§2).
    pub fn configuration(&self) -> Configuration {
        self.keys.configuration(&self.settings)
    }

    /// Issues a recovery token of `account_id` for `recovery_provider` (§3.1, account provider
    /// steps 2–8) and records it with a pending save bound to `session` (§3.2).
    ///
    /// The caller authenticated the user (step 1) and normalized the chosen provider to an
    /// origin (step 2); `session` identifies the user's signed-in session (for example the
    /// session cookie's id) and is stored only hashed.
    ///
    /// # Errors
    ///
    /// - [`AccountProviderError::UnknownRecoveryProvider`]: not on the allow-list (§6.5).
    /// - [`AccountProviderError::Discovery`], [`AccountProviderError::NotARecoveryProvider`]:
    ///   its configuration cannot be obtained (steps 3–4).
    /// - For `obsoletes`: [`AccountProviderError::UnknownToken`],
    ///   [`AccountProviderError::NotOwnedByAccount`],
    ///   [`AccountProviderError::WrongRecoveryProvider`].
    /// - [`AccountProviderError::Protocol`]: the randomness source failed, or the token would
    ///   exceed the recovery provider's `token-max-size`.
    /// - [`AccountProviderError::Store`].
    pub async fn issue<R>(
        &self,
        account_id: &str,
        recovery_provider: &Origin,
        options: IssueOptions,
        session: &str,
        now: OffsetDateTime,
        rng: &mut R,
    ) -> Result<SaveTokenRequest, AccountProviderError>
    where
        R: TryCryptoRng + ?Sized,
    {
        // §6.5: tokens go only to recovery providers this provider trusts.
        if self
            .settings
            .recovery_provider(recovery_provider.as_str())
            .is_none()
        {
            return Err(AccountProviderError::UnknownRecoveryProvider);
        }
        // §3.1 AP steps 3–4: the recovery provider's configuration, or abort.
        let config = self.discovery.configuration(recovery_provider).await?;
        if config.issuer() != recovery_provider {
            return Err(DiscoveryError::IssuerMismatch.into());
        }
        let rp = config
            .recovery_provider()
            .ok_or(AccountProviderError::NotARecoveryProvider)?;
        // §3.1 AP step 5: the audience is the configuration's issuer.
        let audience = config.issuer().clone();
        // §3.1 `obsoletes`: only a token of this account at the same recovery provider.
        if let Some(old) = options.obsoletes {
            let record = self
                .store
                .token(old)
                .await?
                .ok_or(AccountProviderError::UnknownToken)?;
            if record.account_id != account_id {
                return Err(AccountProviderError::NotOwnedByAccount);
            }
            if record.audience != audience {
                return Err(AccountProviderError::WrongRecoveryProvider);
            }
        }

        let token_id = TokenId::generate(rng)?;
        let mut secret = Zeroizing::new([0u8; 32]);
        rng.try_fill_bytes(secret.as_mut_slice())
            .map_err(|_| Misuse::Rng)?;
        let created = whole_seconds(now);
        let payload = Payload {
            account_id: account_id.to_owned(),
            created_at: created.unix_timestamp(),
            secret: *secret,
            purpose: options.purpose,
        };
        let mut token_options = Options::NONE;
        if options.status_requested {
            token_options = token_options | Options::STATUS_REQUESTED;
        }
        if options.low_friction {
            token_options = token_options | Options::LOW_FRICTION;
        }
        let params = Issue {
            key: self.keys.signing_key(),
            token_id,
            options: token_options,
            issuer: &self.settings.origin,
            audience: &audience,
            issued: created,
            max_size: rp.token_max_size.min(MAX_TOKEN_LEN),
        };
        let encoded = dar_core::issue(params, &payload, self.keys.sealer(), rng)?;

        let mut state_bytes = Zeroizing::new([0u8; 32]);
        rng.try_fill_bytes(state_bytes.as_mut_slice())
            .map_err(|_| Misuse::Rng)?;
        let state = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(state_bytes.as_slice());

        // §3.1 AP steps 6–7: token id, audience and the keys it was made with; no secret.
        let record = TokenRecord {
            token_id,
            account_id: account_id.to_owned(),
            audience: audience.clone(),
            state: TokenState::Issued,
            revoked_reason: None,
            created_at: created,
            updated_at: created,
            obsoletes: options.obsoletes,
            secret_hash: hash(SECRET_LABEL, secret.as_slice()),
            signing_key: self.keys.signing_key().verifying_key().fingerprint(),
            sealing_key_id: self.keys.sealer().current_key_id(),
        };
        let pending = PendingSave {
            state_hash: hash(STATE_LABEL, state.as_bytes()),
            session_hash: hash(SESSION_LABEL, session.as_bytes()),
            token_id,
            expires_at: created + self.settings.save_state_lifetime,
        };
        let audit = AuditEntry {
            at: created,
            event: AuditEvent::Issued,
            token_id,
            account_id: account_id.to_owned(),
            recovery_provider: audience,
            detail: options.obsoletes.map(|old| format!("obsoletes {old}")),
        };
        self.store.insert_token(&record, &pending, &audit).await?;
        Ok(SaveTokenRequest {
            save_token_url: rp.save_token.clone(),
            token: encoded.to_base64(),
            state,
            token_id,
            obsoletes: options.obsoletes,
        })
    }

    /// Handles the save-token-return (§3.2): consumes the `state` once, for the session that
    /// started the save, and records `status` (`save-success` or `save-failure`). When a
    /// token that `obsoletes` another is saved, the other is revoked.
    ///
    /// # Errors
    ///
    /// - [`AccountProviderError::MalformedStatus`]: `status` is neither value; the state is
    ///   left pending.
    /// - [`AccountProviderError::StateMismatch`]: the state is unknown, expired, used, or was
    ///   issued to another session; nothing changes.
    /// - [`AccountProviderError::Store`].
    pub async fn save_token_return(
        &self,
        state: &str,
        status: &str,
        session: &str,
        now: OffsetDateTime,
    ) -> Result<SaveReturn, AccountProviderError> {
        let event = match status {
            "save-success" => StatusEvent::SaveSuccess,
            "save-failure" => StatusEvent::SaveFailure,
            _ => return Err(AccountProviderError::MalformedStatus),
        };
        if state.is_empty() || state.len() > MAX_STATE_LEN {
            return Err(AccountProviderError::StateMismatch);
        }
        // Consume the single-use state atomically before acting on it.
        let token_id = self
            .store
            .take_pending_save(
                &hash(STATE_LABEL, state.as_bytes()),
                &hash(SESSION_LABEL, session.as_bytes()),
                whole_seconds(now),
            )
            .await?
            .ok_or(AccountProviderError::StateMismatch)?;
        let state = self.apply_event(token_id, event, now).await?;
        Ok(SaveReturn { token_id, state })
    }

    /// Handles a token-status call (§3.6.1) from `peer`.
    ///
    /// An id this provider never issued changes nothing and returns `Ok(())`, exactly like an
    /// applied event: the caller learns nothing about which ids exist. The checks run in this
    /// order: the form parses; `peer` is an address some known recovery provider may call
    /// from; the token exists; its recovery provider is known and `peer` is in its ranges; the
    /// provider's fixed-window counter (shared by every instance through the store) is not
    /// exceeded; then the event is applied. A repudiation revokes the token and is audited.
    ///
    /// # Errors
    ///
    /// [`AccountProviderError::MalformedStatus`], [`AccountProviderError::ForbiddenAddress`],
    /// [`AccountProviderError::UnknownRecoveryProvider`], [`AccountProviderError::RateLimited`],
    /// [`AccountProviderError::Store`]. Nothing changes on any of them.
    pub async fn token_status(
        &self,
        form: &TokenStatusForm<'_>,
        peer: IpAddr,
        now: OffsetDateTime,
    ) -> Result<(), AccountProviderError> {
        let token_id =
            TokenId::from_hex(form.id).map_err(|_| AccountProviderError::MalformedStatus)?;
        let event = StatusEvent::parse(form.status, form.countersigned_id)?;
        // §3.6.2: only addresses of known recovery providers, before anything is looked up.
        if !self
            .settings
            .recovery_providers
            .iter()
            .any(|rp| rp.allows_address(peer))
        {
            return Err(AccountProviderError::ForbiddenAddress);
        }
        let Some(record) = self.store.token(token_id).await? else {
            return Ok(());
        };
        // §3.6.2: events only for tokens addressed to a known recovery provider, from its
        // addresses.
        let known = self
            .settings
            .recovery_provider(record.audience.as_str())
            .ok_or(AccountProviderError::UnknownRecoveryProvider)?;
        if !known.allows_address(peer) {
            return Err(AccountProviderError::ForbiddenAddress);
        }
        // §3.6.2 denial of service: a fixed window per recovery provider, across instances.
        let limit = self.settings.status_rate_limit;
        let window = limit.window_seconds();
        let window_start = now
            .unix_timestamp()
            .div_euclid(window)
            .saturating_mul(window);
        let count = self
            .store
            .count_status_event(&record.audience, window_start)
            .await?;
        if count > limit.max_events {
            return Err(AccountProviderError::RateLimited);
        }
        self.apply_event(token_id, event, now).await?;
        Ok(())
    }

    /// Accepts a countersigned token (§3.5 steps 1–16) and returns the evidence.
    ///
    /// `token` is the `countersigned-token` form value; `binding` the token binding expected
    /// for the user agent's connection, if any (step 8). All state changes of one acceptance
    /// (replay guard, token marked used, permanent recovery record, audit) are one
    /// transaction: of concurrent acceptances of the same countersigned token, or of two
    /// countersigned tokens over the same recovery token, exactly one succeeds.
    ///
    /// Step 17 (notify the user out of band, §6.2) is the caller's: the evidence carries what
    /// the notice needs.
    ///
    /// # Errors
    ///
    /// The first check that fails, in draft order:
    /// - [`AccountProviderError::Protocol`]: steps 1–4 (decoding), 5–8, 11–12 (verification),
    ///   13 (opening the payload).
    /// - [`AccountProviderError::UnknownRecoveryProvider`]: the countersigner is not on the
    ///   allow-list (checked before any fetch).
    /// - [`AccountProviderError::Discovery`], [`AccountProviderError::NotARecoveryProvider`]:
    ///   step 10.
    /// - [`AccountProviderError::Replayed`]: step 9.
    /// - Step 14: [`AccountProviderError::UnknownToken`],
    ///   [`AccountProviderError::PayloadMismatch`], [`AccountProviderError::NotOwnedByAccount`],
    ///   [`AccountProviderError::WrongRecoveryProvider`], [`AccountProviderError::TokenRevoked`],
    ///   [`AccountProviderError::TokenNotHeld`], [`AccountProviderError::TokenAlreadyUsed`].
    /// - [`AccountProviderError::Store`].
    pub async fn accept_countersigned(
        &self,
        token: &str,
        binding: Option<&[u8]>,
        now: OffsetDateTime,
    ) -> Result<RecoveryEvidence, AccountProviderError> {
        self.accept_countersigned_with(token, binding, now, |_| Ok(None))
            .await
    }

    /// As [`accept_countersigned`](Self::accept_countersigned), and the evidence is parked
    /// in the same transaction that uses the token: `handoff` is called with the evidence
    /// once every check has passed and before anything is written, and the
    /// [`EvidenceHandoff`] it returns is committed with the recovery. When it fails, nothing
    /// is written and its error is returned.
    ///
    /// ```no_run
    /// # async fn run<S: dar_account_provider::AccountProviderStore, D: dar_discovery::ConfigSource>(
    /// #     ap: &dar_account_provider::AccountProvider<S, D>,
    /// #     token: &str,
    /// # ) -> Result<(), dar_account_provider::AccountProviderError> {
    /// use dar_account_provider::EvidenceHandoff;
    /// use time::{Duration, OffsetDateTime};
    ///
    /// let now = OffsetDateTime::now_utc();
    /// let evidence = ap
    ///     .accept_countersigned_with(token, None, now, |evidence| {
    ///         Ok::<_, dar_account_provider::AccountProviderError>(Some(EvidenceHandoff {
    ///             key_hash: "hash of the id the browser is sent on with".into(),
    ///             kind: "delegated".into(),
    ///             payload: evidence.token_id().to_string(),
    ///             expires_at: now + Duration::minutes(10),
    ///         }))
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`accept_countersigned`](Self::accept_countersigned), converted into `E`, or the
    /// error `handoff` returns.
    pub async fn accept_countersigned_with<E>(
        &self,
        token: &str,
        binding: Option<&[u8]>,
        now: OffsetDateTime,
        handoff: impl FnOnce(&RecoveryEvidence) -> Result<Option<EvidenceHandoff>, E> + Send,
    ) -> Result<RecoveryEvidence, E>
    where
        E: From<AccountProviderError> + Send,
    {
        self.accept(token, binding, now, handoff).await?
    }

    /// §3.5: every check of a countersigned token, then, when `handoff` gives one, the commit
    /// with its evidence; `handoff`'s error when it declines (nothing written then).
    async fn accept<E: Send>(
        &self,
        token: &str,
        binding: Option<&[u8]>,
        now: OffsetDateTime,
        handoff: impl FnOnce(&RecoveryEvidence) -> Result<Option<EvidenceHandoff>, E> + Send,
    ) -> Result<Result<RecoveryEvidence, E>, AccountProviderError> {
        // §3.5 steps 1–4: parse, version 0, type 1, the inner recovery token.
        let bytes = decode_base64(token, MAX_TOKEN_LEN)?;
        let countersigned = CountersignedToken::decode(&bytes)?;
        // §3.5 step 6 (issuer present) and §6.5: the countersigner must be a known recovery
        // provider; nothing is fetched for any other origin.
        let known = self
            .settings
            .recovery_provider(countersigned.outer().issuer())
            .ok_or(AccountProviderError::UnknownRecoveryProvider)?;
        // §3.5 step 10: its current configuration (the source follows no redirects).
        let config = self.discovery.configuration(&known.origin).await?;
        let rp = config
            .recovery_provider()
            .ok_or(AccountProviderError::NotARecoveryProvider)?;
        // §3.5 steps 5–8, 11–12: inner signature against every published key of this
        // provider, issuer/audience, freshness, binding, countersignature.
        let check = ReturnCheck {
            account_provider: &self.settings.origin,
            own_keys: self.keys.published_keys(),
            recovery_provider: config.issuer(),
            countersign_keys: &rp.countersign_keys,
            freshness: self.settings.freshness,
            binding,
        };
        let verified = countersigned.verify_return(&check, now)?;
        let outer = verified.outer();
        let inner = verified.inner();
        let token_id = inner.token_id();
        let countersigned_id = outer.token_id();
        // §3.5 step 13: open the sealed data, bound to the inner token.
        let ctx = SealContext {
            token_id: token_id.as_bytes(),
            issuer: inner.issuer(),
            audience: inner.audience(),
        };
        let payload = self.keys.sealer().open_payload(inner.data(), &ctx)?;
        let outer_issuer = outer.issuer();
        let low_friction = verified.low_friction();
        let guard_expires_at = whole_seconds(outer.issued_at() + self.settings.freshness.max_age())
            + Duration::seconds(1);
        // §3.5 steps 9, 14 and 16 on one hold of the store: the reads, the decision on them,
        // and the commit.
        let decide = |replayed: bool, record: Option<TokenRecord>| {
            // Step 9: a countersigned token is presented once.
            if replayed {
                return Err(AccountProviderError::Replayed);
            }
            // Step 14: the payload must match the token this provider issued.
            let record = record.ok_or(AccountProviderError::UnknownToken)?;
            let secret_hash = hash(SECRET_LABEL, &payload.secret);
            if !bool::from(record.secret_hash.ct_eq(&secret_hash)) {
                return Err(AccountProviderError::PayloadMismatch);
            }
            if record.account_id != payload.account_id {
                return Err(AccountProviderError::NotOwnedByAccount);
            }
            if record.audience.as_str() != outer_issuer {
                return Err(AccountProviderError::WrongRecoveryProvider);
            }
            usable(record.state)?;
            let evidence = RecoveryEvidence {
                account_id: record.account_id,
                recovery_provider: record.audience,
                token_id,
                countersigned_id,
                low_friction,
                token_age: now - record.created_at,
                purpose: payload.purpose,
                recovered_at: now,
            };
            // Steps 9 and 16, one transaction: replay guard, used, permanent record, audit,
            // and the parked evidence when the caller gives one.
            Ok(handoff(&evidence).map(|handoff| {
                let commit = RecoveryCommit {
                    countersigned_id,
                    guard_expires_at,
                    token_id,
                    from: record.state,
                    account_id: evidence.account_id.clone(),
                    recovery_provider: evidence.recovery_provider.clone(),
                    low_friction,
                    at: whole_seconds(now),
                    handoff,
                };
                (commit, evidence)
            }))
        };
        match self.store.recover(countersigned_id, token_id, decide).await {
            // A lost race: say why from the state that won.
            Err(AccountProviderError::TokenAlreadyUsed) => {
                if let Some(now_record) = self.store.token(token_id).await? {
                    usable(now_record.state)?;
                }
                Err(AccountProviderError::TokenAlreadyUsed)
            }
            other => other,
        }
    }

    /// Every token of `account_id`, oldest first, for the user's settings page.
    ///
    /// # Errors
    ///
    /// [`AccountProviderError::Store`].
    pub async fn list_tokens(
        &self,
        account_id: &str,
    ) -> Result<Vec<TokenRecord>, AccountProviderError> {
        self.store.tokens_for_account(account_id).await
    }

    /// Revokes a token of `account_id`. Revoking a revoked token changes nothing.
    ///
    /// # Errors
    ///
    /// [`AccountProviderError::UnknownToken`], [`AccountProviderError::NotOwnedByAccount`],
    /// [`AccountProviderError::Store`].
    pub async fn revoke(
        &self,
        account_id: &str,
        token_id: TokenId,
        now: OffsetDateTime,
    ) -> Result<(), AccountProviderError> {
        self.revoke_with(account_id, token_id, RevocationReason::User, now)
            .await
    }

    /// Revokes every token of `account_id` issued at or after `since` that is not used or
    /// revoked yet: after recovering from a compromise, the tokens an attacker may have made
    /// (§6.3.2). Returns how many were revoked.
    ///
    /// # Errors
    ///
    /// [`AccountProviderError::Store`].
    pub async fn revoke_issued_since(
        &self,
        account_id: &str,
        since: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<usize, AccountProviderError> {
        let mut revoked = 0;
        for record in self.store.tokens_for_account(account_id).await? {
            if record.created_at >= since
                && !matches!(record.state, TokenState::Used | TokenState::Revoked)
            {
                self.revoke_with(
                    account_id,
                    record.token_id,
                    RevocationReason::Compromise,
                    now,
                )
                .await?;
                revoked += 1;
            }
        }
        Ok(revoked)
    }

    /// Drops expired save states, replay guard entries past the freshness window and ended
    /// rate-limit windows. Run it periodically; correctness never depends on it.
    ///
    /// # Errors
    ///
    /// [`AccountProviderError::Store`].
    pub async fn purge(&self, now: OffsetDateTime) -> Result<Purged, AccountProviderError> {
        let window = self.settings.status_rate_limit.window_seconds();
        let current = now
            .unix_timestamp()
            .div_euclid(window)
            .saturating_mul(window);
        self.store.purge(whole_seconds(now), current).await
    }

    async fn revoke_with(
        &self,
        account_id: &str,
        token_id: TokenId,
        reason: RevocationReason,
        now: OffsetDateTime,
    ) -> Result<(), AccountProviderError> {
        let at = whole_seconds(now);
        for _ in 0..TRANSITION_ATTEMPTS {
            let record = self
                .store
                .token(token_id)
                .await?
                .ok_or(AccountProviderError::UnknownToken)?;
            if record.account_id != account_id {
                return Err(AccountProviderError::NotOwnedByAccount);
            }
            if record.state == TokenState::Revoked {
                return Ok(());
            }
            let transition = Transition {
                token_id,
                from: record.state,
                to: TokenState::Revoked,
                revoked_reason: Some(reason),
                at,
                revoke_replaced: None,
                repudiate_recovery: None,
                audit: audit_entry(&record, AuditEvent::Revoked, at, reason.as_str().to_owned()),
            };
            if self.store.apply_transition(&transition).await? {
                return Ok(());
            }
        }
        Err(crate::StoreFailure::Backend("token state kept changing".into()).into())
    }

    /// Applies a lifecycle event to a token (compare-and-set, retried a few times) and
    /// returns its state afterwards.
    async fn apply_event(
        &self,
        token_id: TokenId,
        event: StatusEvent,
        now: OffsetDateTime,
    ) -> Result<TokenState, AccountProviderError> {
        let at = whole_seconds(now);
        for _ in 0..TRANSITION_ATTEMPTS {
            let Some(record) = self.store.token(token_id).await? else {
                return Err(AccountProviderError::UnknownToken);
            };
            let Some(transition) = decide(&record, event, at) else {
                return Ok(record.state);
            };
            let to = transition.to;
            if self.store.apply_transition(&transition).await? {
                return Ok(to);
            }
        }
        Err(crate::StoreFailure::Backend("token state kept changing".into()).into())
    }
}

/// What `event` does to a token in `record.state`; `None` when it changes nothing.
fn decide(record: &TokenRecord, event: StatusEvent, at: OffsetDateTime) -> Option<Transition> {
    use TokenState as S;
    let from = record.state;
    let (to, reason, revoke_replaced, repudiate) = match (event, from) {
        // §3.2, §3.6.1 save-success: saved; the token it replaces is revoked now (§3.1
        // obsoletes).
        (StatusEvent::SaveSuccess, S::Issued | S::SaveFailed) => {
            (S::Saved, None, record.obsoletes, None)
        }
        (StatusEvent::SaveFailure, S::Issued) => (S::SaveFailed, None, None, None),
        (StatusEvent::Deleted, S::Issued | S::Saved | S::SaveFailed) => {
            (S::Deleted, None, None, None)
        }
        // §3.6.1 token-repudiated: the user never meant to save it; it must never recover.
        (StatusEvent::TokenRepudiated, f) if f != S::Revoked => (
            S::Revoked,
            Some(RevocationReason::TokenRepudiated),
            None,
            None,
        ),
        // §3.6.1 recovery-repudiated: revoke, and mark the recovery (even if the token was
        // revoked already).
        (StatusEvent::RecoveryRepudiated(cs), f) => {
            let reason = if f == S::Revoked {
                record.revoked_reason
            } else {
                Some(RevocationReason::RecoveryRepudiated)
            };
            if f == S::Revoked && cs.is_none() {
                return None;
            }
            (S::Revoked, reason, None, cs)
        }
        _ => return None,
    };
    let detail = match (to, reason) {
        (S::Revoked, Some(r)) => r.as_str().to_owned(),
        _ => format!("{from} -> {to}"),
    };
    let event = if to == S::Revoked {
        AuditEvent::Revoked
    } else {
        AuditEvent::StateChanged
    };
    Some(Transition {
        token_id: record.token_id,
        from,
        to,
        revoked_reason: reason,
        at,
        revoke_replaced,
        repudiate_recovery: repudiate,
        audit: audit_entry(record, event, at, detail),
    })
}

fn audit_entry(
    record: &TokenRecord,
    event: AuditEvent,
    at: OffsetDateTime,
    detail: String,
) -> AuditEntry {
    AuditEntry {
        at,
        event,
        token_id: record.token_id,
        account_id: record.account_id.clone(),
        recovery_provider: record.audience.clone(),
        detail: Some(detail),
    }
}

/// §3.5 step 14: whether a token in `state` may still recover.
fn usable(state: TokenState) -> Result<(), AccountProviderError> {
    match state {
        TokenState::Issued | TokenState::Saved => Ok(()),
        TokenState::Used => Err(AccountProviderError::TokenAlreadyUsed),
        TokenState::Revoked => Err(AccountProviderError::TokenRevoked),
        TokenState::SaveFailed | TokenState::Deleted => Err(AccountProviderError::TokenNotHeld),
    }
}

/// SHA-256 of `label || 0x00 || data`. Every hashed input has at least 128 bits of entropy
/// (secrets and states are 256-bit random values) except session ids, which are themselves
/// secrets of the session store, so a plain hash is enough: no one can invert it.
pub(crate) fn hash(label: &[u8], data: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(label);
    h.update([0]);
    h.update(data);
    h.finalize().into()
}

/// `t` without its sub-second part: what tokens carry and what the store keeps.
pub(crate) fn whole_seconds(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(0).unwrap_or(t)
}

#[cfg(test)]
mod tests;
