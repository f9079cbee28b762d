-- The id of the issuer's key a saved token's signature verified with before it was stored
-- (SHA-256 of the key's SPKI DER, 64 lower-case hex digits): before countersigning, the token
-- is accepted while the issuer still publishes that key, without verifying it again (§3.4
-- step 4). Null for tokens saved before this column existed; those are verified again.
alter table rp_saved_token add column signer_key_id text
    check (signer_key_id is null or length(signer_key_id) = 64);
