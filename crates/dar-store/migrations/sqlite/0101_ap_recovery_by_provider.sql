-- Recoveries through one recovery provider in a time window (§6.8: told that provider's
-- countersigning key was compromised, the account provider reviews what it countersigned then).
create index ap_recovery_provider on ap_recovery (recovery_provider, recovered_at);
