-- The silence engine: each membership's next due step (indexed, so a tick
-- costs what is due, not what exists), the ledger of fired steps (the
-- exactly-once key), alerts for workers, and staff working hours.

ALTER TABLE memberships ADD COLUMN silence_start_at BIGINT;      -- the silence the schedule belongs to
ALTER TABLE memberships ADD COLUMN next_step_index BIGINT NOT NULL DEFAULT 0;
ALTER TABLE memberships ADD COLUMN next_step_due_at BIGINT;      -- NULL: nothing scheduled
ALTER TABLE memberships ADD COLUMN schedule_lease_until BIGINT;  -- claimed by a scheduler until then
CREATE INDEX memberships_next_step ON memberships (next_step_due_at);

ALTER TABLE accounts ADD COLUMN work_days TEXT NOT NULL DEFAULT '12345';   -- ISO weekdays, 1 = Monday
ALTER TABLE accounts ADD COLUMN work_start_min BIGINT NOT NULL DEFAULT 540;
ALTER TABLE accounts ADD COLUMN work_end_min BIGINT NOT NULL DEFAULT 1020;
ALTER TABLE accounts ADD COLUMN last_nudge_at BIGINT;
ALTER TABLE accounts ADD COLUMN last_nudge_text BIGINT;

-- One row per (membership, silence, step) that fired: the unique key makes
-- every step fire at most once, whatever the number of schedulers.
CREATE TABLE silence_steps (
    membership_id   TEXT NOT NULL REFERENCES memberships (id),
    silence_start   BIGINT NOT NULL,
    step_index      BIGINT NOT NULL,
    action          TEXT NOT NULL,
    outcome         TEXT NOT NULL,   -- nudged | merged | skipped | alerted
    fired_at        BIGINT NOT NULL,
    notification_id TEXT,
    alert_id        TEXT,
    PRIMARY KEY (membership_id, silence_start, step_index)
);

CREATE TABLE alerts (
    id                  TEXT PRIMARY KEY,
    organisation_id     TEXT NOT NULL REFERENCES organisations (id),
    circle_id           TEXT NOT NULL REFERENCES circles (id),
    membership_id       TEXT NOT NULL REFERENCES memberships (id),
    reason              TEXT NOT NULL CHECK (reason IN ('silence', 'contact_request')),
    status              TEXT NOT NULL CHECK (status IN ('open', 'acknowledged', 'snoozed', 'resolved')),
    silence_start       BIGINT,
    opened_at           BIGINT NOT NULL,
    acknowledged_at     BIGINT,
    acknowledged_by     TEXT REFERENCES accounts (id),
    snoozed_until       BIGINT,
    resolved_at         BIGINT,
    resolved_by         TEXT REFERENCES accounts (id),
    resolution_outcome  TEXT,
    resolution_note     TEXT,
    escalate_at         BIGINT,      -- unacknowledged by then: the coordinators are told
    escalated_at        BIGINT,
    updated_at          BIGINT NOT NULL
);
CREATE INDEX alerts_circle ON alerts (circle_id, status);
CREATE INDEX alerts_membership ON alerts (membership_id, status);
CREATE INDEX alerts_escalate ON alerts (escalate_at);
CREATE INDEX alerts_snoozed ON alerts (snoozed_until);
