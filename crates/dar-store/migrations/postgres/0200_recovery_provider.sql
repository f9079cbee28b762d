-- Recovery provider (02xx). Times are unix seconds (bigint); token ids are 32 lower-case hex
-- digits; origins are canonical serialized origins.

-- Tokens saved for users (§3.1 step 11). A row is never deleted: removal erases the token bytes
-- and keeps (issuer, token_id) taken, so a token once saved for one user is never saved for
-- another (§6.8) nor revived.
create table rp_saved_token (
    rp_saved_token_id bigint generated always as identity primary key,
    user_id text not null,
    issuer text not null,
    token_id text not null,
    token bytea,
    options bigint not null,
    nickname text,
    login_hint text,
    login_hint_sha256 text,
    saved_at bigint not null,
    removed_at bigint,
    removed_reason text check (removed_reason in ('deleted', 'obsoleted', 'repudiated')),
    constraint rp_saved_token_issuer_token_id_key unique (issuer, token_id),
    constraint rp_saved_token_removed_check check ((removed_at is null) = (token is not null))
);
create index rp_saved_token_user_idx on rp_saved_token (user_id, issuer);

-- Every exercise of a saved token (§3.4), kept permanently.
create table rp_recovery (
    rp_recovery_id bigint generated always as identity primary key,
    user_id text not null,
    issuer text not null,
    token_id text not null,
    countersigned_id text not null,
    low_friction boolean not null,
    status_requested boolean not null,
    recovered_at bigint not null,
    repudiated_at bigint,
    constraint rp_recovery_countersigned_id_key unique (countersigned_id)
);
create index rp_recovery_user_idx on rp_recovery (user_id);

-- Messages owed to others (§3.6 status callbacks, §3.4 step 6 user notifications), written in
-- the transaction of the change they report and delivered later.
create table rp_outbox (
    rp_outbox_id bigint generated always as identity primary key,
    kind text not null check (kind in ('token_status', 'user_notification')),
    url text,
    issuer text not null,
    token_id text not null,
    status text,
    countersigned_id text,
    user_id text,
    nickname text,
    event_at bigint not null,
    created_at bigint not null,
    next_attempt_at bigint not null,
    attempts bigint not null default 0,
    delivered_at bigint
);
create index rp_outbox_pending_idx on rp_outbox (next_attempt_at) where delivered_at is null;
