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
