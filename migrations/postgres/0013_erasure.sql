-- Erasure (issue 17, part 3): a member's request to be forgotten, carried
-- out by a job after a grace period. The row stays as the record that the
-- erasure happened (ids and times only).
CREATE TABLE erasures (
    account_id       TEXT PRIMARY KEY REFERENCES accounts (id),
    organisation_id  TEXT NOT NULL,
    requested_at     BIGINT NOT NULL,
    requested_by     TEXT NOT NULL,            -- the member's own account, or a coordinator's
    due_at           BIGINT NOT NULL,
    keep_posts       INTEGER NOT NULL DEFAULT 0,
    lease_until      BIGINT,
    erased_at        BIGINT
);
CREATE INDEX erasures_due ON erasures (due_at);
ALTER TABLE accounts ADD COLUMN erased_at BIGINT;
ALTER TABLE posts ADD COLUMN erased_at BIGINT;          -- removed at the member's request (erasure)
