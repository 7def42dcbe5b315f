-- Outcome measurement (issue 14): validated questionnaires at set moments
-- of a membership, scored when answered, and reported per organisation.
-- Instrument definitions are data (instruments/*.json, src/outcomes/); the
-- database holds only what an organisation decided and what members did.

-- An organisation's record that it holds the permission an instrument's
-- licence asks for (the De Jong Gierveld scale ships disabled until then).
-- Shown in reports.
CREATE TABLE instrument_permissions (
    organisation_id  TEXT NOT NULL REFERENCES organisations (id),
    instrument_key   TEXT NOT NULL,
    statement        TEXT NOT NULL,    -- what permission, from whom, when (the coordinator's words)
    recorded_by      TEXT NOT NULL REFERENCES accounts (id),
    recorded_at      BIGINT NOT NULL,
    PRIMARY KEY (organisation_id, instrument_key)
);

-- Instruments an organisation added itself (its own licensed ones); the
-- definition is the JSON of openapi/instrument.schema.json, validated on
-- import. A key and version, once imported, never change.
CREATE TABLE organisation_instruments (
    organisation_id  TEXT NOT NULL REFERENCES organisations (id),
    instrument_key   TEXT NOT NULL,
    version          BIGINT NOT NULL,
    definition       TEXT NOT NULL,
    imported_by      TEXT REFERENCES accounts (id),   -- NULL: by `kring admin import-instrument`
    imported_at      BIGINT NOT NULL,
    PRIMARY KEY (organisation_id, instrument_key, version)
);

-- A circle's measurement plan: which instrument at which moment, counted
-- from the member's join ('join') or from the circle's end ('circle_end').
CREATE TABLE measurement_moments (
    circle_id        TEXT NOT NULL REFERENCES circles (id),
    instrument_key   TEXT NOT NULL,
    moment           TEXT NOT NULL,    -- a name: intake, week_6, month_3, month_6, follow_up, ...
    anchor           TEXT NOT NULL CHECK (anchor IN ('join', 'circle_end')),
    offset_days      BIGINT NOT NULL,
    PRIMARY KEY (circle_id, instrument_key, moment)
);
ALTER TABLE circles ADD COLUMN ends_at BIGINT;                 -- optional end of the circle
ALTER TABLE memberships ADD COLUMN measurement_off_at BIGINT;  -- the member turned measurement off

-- One questionnaire for one membership at one moment: made once (the
-- unique key), prompted, reminded at most twice, then answered, declined
-- or expired. The job claims rows by `next_action_at` under a lease.
CREATE TABLE questionnaires (
    id                  TEXT PRIMARY KEY,
    membership_id       TEXT NOT NULL REFERENCES memberships (id),
    account_id          TEXT NOT NULL REFERENCES accounts (id),
    circle_id           TEXT NOT NULL REFERENCES circles (id),
    organisation_id     TEXT NOT NULL REFERENCES organisations (id),
    instrument_key      TEXT NOT NULL,
    instrument_version  BIGINT NOT NULL,
    moment              TEXT NOT NULL,
    due_at              BIGINT NOT NULL,     -- the moment itself
    expires_at          BIGINT NOT NULL,     -- after this it can no longer be answered
    status              TEXT NOT NULL CHECK (status IN ('scheduled', 'open', 'answered', 'declined', 'expired')),
    prompts_sent        BIGINT NOT NULL DEFAULT 0,   -- 1 = the prompt, 2 and 3 = the two reminders
    next_action_at      BIGINT,              -- when the job looks at it next; NULL when finished
    lease_until         BIGINT,
    answered_at         BIGINT,
    declined_at         BIGINT,
    raw_score           BIGINT,              -- NULL when the missing-data rule says so
    scaled_score        BIGINT,
    band                TEXT,
    subscales           TEXT,                -- JSON: [{"key", "score", "band"}]
    created_at          BIGINT NOT NULL,
    UNIQUE (membership_id, instrument_key, moment)
);
CREATE INDEX questionnaires_next_action ON questionnaires (next_action_at);
CREATE INDEX questionnaires_account ON questionnaires (account_id, status);
CREATE INDEX questionnaires_report ON questionnaires (organisation_id, instrument_key, moment);

-- The answers of an answered questionnaire, one row per item; value NULL
-- for an item left out.
CREATE TABLE questionnaire_answers (
    questionnaire_id  TEXT NOT NULL REFERENCES questionnaires (id),
    item_id           TEXT NOT NULL,
    value             TEXT,
    PRIMARY KEY (questionnaire_id, item_id)
);

-- A face-to-face comparison cohort, known only by its aggregate figures per
-- instrument and moment, as a coordinator recorded them.
CREATE TABLE comparison_cohorts (
    id               TEXT PRIMARY KEY,
    organisation_id  TEXT NOT NULL REFERENCES organisations (id),
    instrument_key   TEXT NOT NULL,
    description      TEXT NOT NULL,
    created_by       TEXT NOT NULL REFERENCES accounts (id),
    created_at       BIGINT NOT NULL
);
CREATE TABLE comparison_figures (
    cohort_id     TEXT NOT NULL REFERENCES comparison_cohorts (id),
    moment        TEXT NOT NULL,
    n             BIGINT NOT NULL,
    mean          DOUBLE PRECISION NOT NULL,
    sd            DOUBLE PRECISION NOT NULL,
    change_n      BIGINT,                -- the cohort's paired change from intake, when known
    change_mean   DOUBLE PRECISION,
    change_sd     DOUBLE PRECISION,
    band_counts   TEXT,                  -- JSON: {"band_key": count}
    PRIMARY KEY (cohort_id, moment)
);
