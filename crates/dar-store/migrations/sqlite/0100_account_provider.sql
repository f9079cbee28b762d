-- Account provider role (§3.1, §3.2, §3.5, §3.6). Times are unix seconds (integer) in both
-- backends. No table holds a token, a key, a payload or a secret: only SHA-256 hashes of the
-- payload secret, of the save-token state and of the session id.

-- Tokens this provider issued (§3.1 AP steps 6-7). ap_token_id: the token id, 32 hex digits.
create table ap_token (
    ap_token_id text primary key,
    account_id text not null,
    audience text not null,
    state text not null
        check (state in ('issued', 'saved', 'save_failed', 'deleted', 'used', 'revoked')),
    revoked_reason text check (revoked_reason in
        ('user', 'replaced', 'token_repudiated', 'recovery_repudiated', 'compromise')),
    created_at integer not null,
    updated_at integer not null,
    obsoletes text,
    secret_hash blob not null check (length(secret_hash) = 32),
    signing_key text not null,
    sealing_key_id integer not null
);
create index ap_token_account on ap_token (account_id, created_at);

-- Pending save-token round trips (§3.2): single use, bound to the session, expiring.
-- ap_save_state_id: SHA-256 of the state value.
create table ap_save_state (
    ap_save_state_id blob primary key,
    session_hash blob not null,
    ap_token_id text not null references ap_token (ap_token_id),
    expires_at integer not null
);
create index ap_save_state_expiry on ap_save_state (expires_at);

-- Replay guard (§3.5 step 9): countersigned token ids, kept while they could be fresh.
create table ap_replay_guard (
    ap_replay_guard_id text primary key,
    ap_token_id text not null,
    expires_at integer not null
);
create index ap_replay_guard_expiry on ap_replay_guard (expires_at);

-- Permanent record of recoveries (§3.5 step 16). ap_recovery_id: the countersigned token id.
-- One recovery per recovery token.
create table ap_recovery (
    ap_recovery_id text primary key,
    ap_token_id text not null unique references ap_token (ap_token_id),
    account_id text not null,
    recovery_provider text not null,
    recovered_at integer not null,
    low_friction boolean not null,
    repudiated_at integer
);
create index ap_recovery_account on ap_recovery (account_id, recovered_at);

-- Token-status rate limit (§3.6.2): one fixed-window counter per recovery provider.
create table ap_status_rate (
    recovery_provider text not null,
    window_start integer not null,
    event_count integer not null,
    primary key (recovery_provider, window_start)
);

-- Audit log of token lifecycle events.
create table ap_audit (
    ap_audit_id integer primary key autoincrement,
    at integer not null,
    event text not null,
    ap_token_id text not null,
    account_id text not null,
    recovery_provider text not null,
    detail text
);
create index ap_audit_account on ap_audit (account_id, ap_audit_id);
