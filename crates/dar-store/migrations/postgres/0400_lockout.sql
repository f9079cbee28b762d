-- Lockout recovery (04xx): what the account provider needs to decide and carry out the recovery
-- of an account whose second factor is lost. Times are unix seconds (bigint). Secrets are
-- never stored: recovery codes as argon2id PHC strings, email codes, recovery handles and
-- cancel links as hex SHA-256 (the caller hashes). The pending TOTP secret is the exception,
-- as in web_user (0300): a deployment should encrypt it at rest.

-- Notification addresses of an account (several per account); only verified ones receive
-- notices and email codes.
create table web_email (
    web_email_id bigint generated always as identity primary key,
    web_user_id bigint not null references web_user (web_user_id),
    address text not null,
    verified_at bigint,
    created_at bigint not null,
    constraint web_email_user_address_key unique (web_user_id, address)
);
create index web_email_address_idx on web_email (address);

-- Single-use recovery codes shown once at 2FA set-up; regenerating deletes the whole set.
-- Ids are never reused (identity), so a replaced code's id names nothing new.
create table recovery_code (
    recovery_code_id bigint generated always as identity primary key,
    web_user_id bigint not null references web_user (web_user_id),
    code_hash text not null,
    created_at bigint not null,
    used_at bigint
);
create index recovery_code_user_idx on recovery_code (web_user_id);

-- One recovery attempt of one account. The browser holds a random handle (stored hashed);
-- staff type the integer id. cancel_hash is the hash of the cancel link's token, set when the
-- recovery becomes pending.
create table lockout_recovery (
    recovery_id bigint generated always as identity primary key,
    web_user_id bigint not null references web_user (web_user_id),
    handle_hash text not null,
    state text not null check (state in
        ('collecting', 'pending', 'unlocked', 'refused', 'cancelled', 'review', 'denied')),
    outcome_rule text,
    created_at bigint not null,
    updated_at bigint not null,
    completes_at bigint,
    last_notice_at bigint,
    final_notice_sent boolean not null default false,
    cancel_hash text,
    decided_by text,
    source_address text,
    constraint lockout_recovery_handle_key unique (handle_hash),
    constraint lockout_recovery_pending_check check (state <> 'pending' or completes_at is not null),
    constraint lockout_recovery_cancel_key unique (cancel_hash)
);
create index lockout_recovery_user_idx on lockout_recovery (web_user_id);
-- The worker's due-work query: pending recoveries by completion time.
create index lockout_recovery_state_idx on lockout_recovery (state, completes_at);

-- Evidence gathered in a recovery, by reference (token id hex, code id, contact account id),
-- never the secret itself. Each piece counts once.
create table lockout_evidence (
    recovery_id bigint not null references lockout_recovery (recovery_id),
    kind text not null check (kind in
        ('delegated', 'recovery_code', 'email_code', 'trusted_contact', 'password')),
    reference text not null,
    detail text not null,
    added_at bigint not null,
    primary key (recovery_id, kind, reference)
);

-- Email one-time codes, bound to one recovery. At most one live (not superseded) code per
-- recovery; attempts counts wrong guesses.
create table email_code (
    email_code_id bigint generated always as identity primary key,
    recovery_id bigint not null references lockout_recovery (recovery_id),
    web_email_id bigint not null references web_email (web_email_id),
    code_hash text not null,
    created_at bigint not null,
    expires_at bigint not null,
    attempts bigint not null default 0,
    used_at bigint,
    superseded boolean not null default false
);
create unique index email_code_live_idx on email_code (recovery_id) where not superseded;
-- Rate limits per address.
create index email_code_email_idx on email_code (web_email_id, created_at);

-- Accounts an owner named in advance to vouch for them.
create table trusted_contact (
    owner_id bigint not null references web_user (web_user_id),
    contact_id bigint not null references web_user (web_user_id),
    added_at bigint not null,
    primary key (owner_id, contact_id),
    check (owner_id <> contact_id)
);
create index trusted_contact_contact_idx on trusted_contact (contact_id);

-- A second factor enabled on an old account, held until effective_at so the owner can cancel.
-- totp_secret is a shared secret (see web_user in 0300).
create table pending_factor (
    pending_factor_id bigint generated always as identity primary key,
    web_user_id bigint not null references web_user (web_user_id),
    totp_secret text not null,
    created_at bigint not null,
    effective_at bigint not null,
    cancel_hash text not null,
    state text not null check (state in ('pending', 'active', 'cancelled')),
    constraint pending_factor_cancel_key unique (cancel_hash)
);
create index pending_factor_user_idx on pending_factor (web_user_id);
create index pending_factor_state_idx on pending_factor (state, effective_at);

-- Security history: append-only. The trigger refuses every update, delete and truncate.
create table audit_event (
    audit_event_id bigint generated always as identity primary key,
    web_user_id bigint references web_user (web_user_id),
    at bigint not null,
    actor text not null,
    event text not null,
    detail text not null,
    source_address text
);
create index audit_event_user_idx on audit_event (web_user_id, audit_event_id);
create function audit_event_append_only() returns trigger language plpgsql as $$
begin
    raise exception 'audit_event is append-only';
end
$$;
create trigger audit_event_no_change before update or delete on audit_event
    for each row execute function audit_event_append_only();
create trigger audit_event_no_truncate before truncate on audit_event
    for each statement execute function audit_event_append_only();

-- Mail to send, written in the transaction of the event it reports, delivered by a worker
-- with retries. A body may hold an email code or a cancel link: delivery erases it.
create table mail_outbox (
    mail_id bigint generated always as identity primary key,
    to_address text not null,
    subject text not null,
    body text not null,
    created_at bigint not null,
    next_attempt_at bigint not null,
    attempts bigint not null default 0,
    delivered_at bigint,
    last_error text
);
create index mail_outbox_due_idx on mail_outbox (next_attempt_at) where delivered_at is null;
