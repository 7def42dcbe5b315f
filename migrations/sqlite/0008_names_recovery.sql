-- Names and recovery codes (issue 12, items 6 and 12).

-- Upgrades of stored data that SQL cannot compute, run once by Kring right
-- after the migrations and recorded here. The first: `pseudonym_key` is now
-- a pseudonym's look-alike skeleton (Unicode TR39), no longer its lower case,
-- so every stored key is computed again (`pseudonym_skeleton`).
CREATE TABLE data_upgrades (
    name     TEXT PRIMARY KEY,
    done_at  BIGINT NOT NULL
);

-- Where a recovery code was issued, so that the circle's staff can see it,
-- and whether a newer code replaced it (`used_at` alone cannot tell).
ALTER TABLE account_codes ADD COLUMN circle_id TEXT;
ALTER TABLE account_codes ADD COLUMN replaced_at BIGINT;
