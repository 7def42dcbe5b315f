-- Exports (issue 17, part 2): a member's copy of everything Kring holds
-- about them (GDPR art. 15 and 20), built by a job and kept for download
-- until `expires_at` (KRING_EXPORT_TTL_HOURS), after which the document is
-- deleted and only the row (who asked, when) stays.
--
-- One export in progress per account: the partial unique index below
-- refuses a second pending row, on both databases, whatever the timing.
CREATE TABLE exports (
    id              TEXT PRIMARY KEY,
    account_id      TEXT NOT NULL REFERENCES accounts (id),   -- whose data
    requested_by    TEXT NOT NULL REFERENCES accounts (id),   -- the member, or a coordinator on their behalf
    status          TEXT NOT NULL CHECK (status IN ('pending', 'ready', 'expired', 'failed')),
    requested_at    BIGINT NOT NULL,
    build_due_at    BIGINT,          -- pending: when the job may build it; NULL once built
    lease_until     BIGINT,          -- claimed by a builder until then
    attempts        BIGINT NOT NULL DEFAULT 0,
    ready_at        BIGINT,
    expires_at      BIGINT,
    document        TEXT,            -- the JSON document; NULL before it is built and after expiry
    updated_at      BIGINT NOT NULL
);
CREATE UNIQUE INDEX exports_one_pending ON exports (account_id) WHERE status = 'pending';
CREATE INDEX exports_account ON exports (account_id, requested_at);
CREATE INDEX exports_build_due ON exports (status, build_due_at);
CREATE INDEX exports_expires ON exports (status, expires_at);
