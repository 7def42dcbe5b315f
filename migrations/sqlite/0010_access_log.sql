-- The access log (issue 17): one entry each time staff (a worker or a
-- coordinator) read or change data about a member, as NEN 7513 describes
-- an entry: when, who (account and role), on whose behalf, about whom, what
-- kind of data, what was done, and where (the API operation, the client and
-- the session). Never message content: ids, names of kinds, counts.
--
-- Append-only: nothing updates an entry (a trigger refuses it) and only
-- retention expiry deletes them, oldest first. Each entry carries the hash
-- of the one before it in its organisation (`prev_hash`) and its own hash
-- over a canonical encoding of every column (`src/access_log/chain.rs`), so
-- a changed, removed or inserted entry breaks the chain, which
-- `kring admin verify-access-log` checks.
--
-- No foreign keys on the people: entries outlive an erased account (its
-- ids, opaque and random, then point at nobody).
CREATE TABLE access_log (
    id                     TEXT PRIMARY KEY,
    organisation_id        TEXT NOT NULL,
    seq                    BIGINT NOT NULL,      -- 1, 2, 3 … within the organisation: the chain's order
    accessed_at            BIGINT NOT NULL,
    actor_account_id       TEXT NOT NULL,        -- the staff member
    actor_role             TEXT NOT NULL CHECK (actor_role IN ('worker', 'coordinator')),
    on_behalf_of           TEXT,                 -- an account the staff member acted for, if any
    subject_account_id     TEXT NOT NULL,        -- the member
    subject_membership_id  TEXT,                 -- the member's membership, when the data is a circle's
    circle_id              TEXT,
    kind                   TEXT NOT NULL,
    action                 TEXT NOT NULL,
    operation              TEXT NOT NULL,        -- the API operation id
    client                 TEXT,                 -- the client's User-Agent, shortened
    session_id             TEXT,                 -- the staff member's sign-in on one device
    result_count           BIGINT,               -- lists: how many items about this member were shown
    prev_hash              TEXT NOT NULL,
    hash                   TEXT NOT NULL
);
CREATE UNIQUE INDEX access_log_chain ON access_log (organisation_id, seq);
-- GET /v1/me/access-log: a member's entries, newest first.
CREATE INDEX access_log_subject ON access_log (subject_account_id, accessed_at, id);
-- GET /v1/organisation/access-log.
CREATE INDEX access_log_organisation ON access_log (organisation_id, accessed_at, id);

-- Each organisation's chain: its last entry, and the anchor that retention
-- leaves (the last expired entry), from which verification starts. Appends
-- take turns on this row: it is updated in the appending transaction, which
-- locks it on PostgreSQL (SQLite has one writer), so two appends can never
-- both follow the same entry.
CREATE TABLE access_log_heads (
    organisation_id  TEXT PRIMARY KEY,
    seq              BIGINT NOT NULL,
    hash             TEXT NOT NULL,
    anchor_seq       BIGINT NOT NULL,
    anchor_hash      TEXT NOT NULL
);

CREATE TRIGGER access_log_append_only BEFORE UPDATE ON access_log
BEGIN
    SELECT RAISE(ABORT, 'the access log is append-only');
END;
