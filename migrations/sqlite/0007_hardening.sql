-- Hardening (issue 12).

-- Idempotent replays never hold a secret. Responses that carried tokens or a
-- one-time code are no longer stored: a retry of one is refused. Rows stored
-- before this version with such a body (or with tokens to be re-issued) get
-- that refusal now, so that no setup, recovery or invite code and no token
-- stays in the table.
UPDATE idempotency_keys
SET status_code = 409,
    content_type = 'application/problem+json',
    response_body = '{"type":"urn:kring:problem:idempotency_replay_refused","title":"Conflict","status":409,"code":"idempotency_replay_refused","detail":"A request with this Idempotency-Key already succeeded, and its response held a secret that is never kept for replay, so nothing was done again. Sign in again, or ask for a new code."}'
WHERE status_code BETWEEN 200 AND 299
  AND (reissue_account_id IS NOT NULL
       OR response_body LIKE '%"setup_code":"%'
       OR response_body LIKE '%"code":"%'
       OR response_body LIKE '%"access_token":"%'
       OR response_body LIKE '%"refresh_token":"%');
ALTER TABLE idempotency_keys DROP COLUMN reissue_account_id;

-- One row per login name being signed in with: an attempt holds it (row lock)
-- while it counts the recent failures and claims a slot, so attempts that
-- arrive together are counted one after another.
CREATE TABLE login_throttles (
    identifier  TEXT PRIMARY KEY,
    locked_at   BIGINT NOT NULL
);
CREATE INDEX login_throttles_locked ON login_throttles (locked_at);

-- A refresh token's successor pair is derived from the token itself and this
-- random salt (HMAC-SHA256), so a retry within the grace period, or a refresh
-- racing it, gets the same pair again without the pair ever being stored.
ALTER TABLE refresh_tokens ADD COLUMN successor_salt TEXT;
