-- Kring's first schema. Portable on purpose: TEXT ids, BIGINT epoch
-- milliseconds for times, BIGINT 0/1 for flags, so every query runs unchanged
-- on SQLite and PostgreSQL. Keep migrations/sqlite and migrations/postgres in step.

CREATE TABLE organisations (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE accounts (
    id                  TEXT PRIMARY KEY,
    organisation_id     TEXT NOT NULL REFERENCES organisations (id),
    role                TEXT NOT NULL CHECK (role IN ('coordinator', 'worker', 'member')),
    display_name        TEXT,
    email               TEXT,          -- lower-cased; staff only
    login_name          TEXT,          -- lower-cased; optional for members
    password_hash       TEXT,          -- Argon2id PHC string
    locale              TEXT NOT NULL,
    time_zone           TEXT NOT NULL,
    quiet_start_min     BIGINT NOT NULL DEFAULT 1260,  -- minutes after local midnight
    quiet_end_min       BIGINT NOT NULL DEFAULT 540,
    reminder_time_min   BIGINT,                        -- preferred local reminder time
    created_at          BIGINT NOT NULL,
    deactivated_at      BIGINT
);
CREATE UNIQUE INDEX accounts_email ON accounts (email);
CREATE UNIQUE INDEX accounts_login_name ON accounts (login_name);
CREATE INDEX accounts_organisation ON accounts (organisation_id, role);

-- One sign-in on one device; its tokens form one refresh family.
CREATE TABLE sessions (
    id              TEXT PRIMARY KEY,
    account_id      TEXT NOT NULL REFERENCES accounts (id),
    created_at      BIGINT NOT NULL,
    last_used_at    BIGINT NOT NULL,
    revoked_at      BIGINT,
    revoked_reason  TEXT
);
CREATE INDEX sessions_account ON sessions (account_id);

CREATE TABLE access_tokens (
    token_hash  TEXT PRIMARY KEY,
    session_id  TEXT NOT NULL REFERENCES sessions (id),
    expires_at  BIGINT NOT NULL
);
CREATE INDEX access_tokens_session ON access_tokens (session_id);

CREATE TABLE refresh_tokens (
    token_hash  TEXT PRIMARY KEY,
    session_id  TEXT NOT NULL REFERENCES sessions (id),
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT,
    replaced_by TEXT                 -- hash of the token issued in exchange
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

-- One-time codes bound to an account: staff setup (choose a password) and
-- member recovery (move to a new phone).
CREATE TABLE account_codes (
    code_hash   TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL REFERENCES accounts (id),
    purpose     TEXT NOT NULL CHECK (purpose IN ('setup', 'recovery')),
    created_by  TEXT,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT
);
CREATE INDEX account_codes_account ON account_codes (account_id, purpose);

CREATE TABLE login_failures (
    id          TEXT PRIMARY KEY,
    identifier  TEXT NOT NULL,
    failed_at   BIGINT NOT NULL
);
CREATE INDEX login_failures_identifier ON login_failures (identifier, failed_at);

CREATE TABLE circles (
    id                  TEXT PRIMARY KEY,
    organisation_id     TEXT NOT NULL REFERENCES organisations (id),
    name                TEXT NOT NULL,
    theme               TEXT NOT NULL,
    language            TEXT NOT NULL,
    rhythm_days         BIGINT NOT NULL,
    escalation_policy   TEXT NOT NULL,   -- JSON, validated on the way in
    checkin_visibility  TEXT NOT NULL CHECK (checkin_visibility IN ('circle', 'workers')),
    agreement_version   BIGINT NOT NULL,
    agreement_text      TEXT NOT NULL,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    archived_at         BIGINT
);
CREATE INDEX circles_organisation ON circles (organisation_id);

CREATE TABLE memberships (
    id                  TEXT PRIMARY KEY,
    circle_id           TEXT NOT NULL REFERENCES circles (id),
    account_id          TEXT NOT NULL REFERENCES accounts (id),
    role                TEXT NOT NULL CHECK (role IN ('member', 'worker')),
    pseudonym           TEXT NOT NULL,
    pseudonym_key       TEXT NOT NULL,   -- case-folded, for uniqueness
    consent_version     BIGINT,
    consented_at        BIGINT,
    away_until          BIGINT,
    nudges_enabled      BIGINT NOT NULL DEFAULT 1,
    last_activity_at    BIGINT NOT NULL,
    last_read_at        BIGINT NOT NULL,
    joined_at           BIGINT NOT NULL,
    left_at             BIGINT,
    updated_at          BIGINT NOT NULL
);
CREATE UNIQUE INDEX memberships_circle_account ON memberships (circle_id, account_id);
CREATE UNIQUE INDEX memberships_circle_pseudonym ON memberships (circle_id, pseudonym_key) WHERE left_at IS NULL;
CREATE INDEX memberships_account ON memberships (account_id);

CREATE TABLE invites (
    id              TEXT PRIMARY KEY,
    organisation_id TEXT NOT NULL REFERENCES organisations (id),
    circle_id       TEXT NOT NULL REFERENCES circles (id),
    code_hash       TEXT NOT NULL,
    code_hint       TEXT NOT NULL,   -- the last four characters, to tell invites apart
    created_by      TEXT NOT NULL REFERENCES accounts (id),
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    max_uses        BIGINT NOT NULL,
    uses            BIGINT NOT NULL DEFAULT 0,
    revoked_at      BIGINT
);
CREATE UNIQUE INDEX invites_code ON invites (code_hash);
CREATE INDEX invites_circle ON invites (circle_id, created_at);

CREATE TABLE posts (
    id                      TEXT PRIMARY KEY,
    circle_id               TEXT NOT NULL REFERENCES circles (id),
    author_membership_id    TEXT NOT NULL REFERENCES memberships (id),
    reply_to_id             TEXT REFERENCES posts (id),
    body                    TEXT NOT NULL,
    created_at              BIGINT NOT NULL,
    updated_at              BIGINT NOT NULL,
    edited_at               BIGINT,
    deleted_at              BIGINT,
    hidden_at               BIGINT,
    hidden_reason           TEXT,
    hidden_by               TEXT REFERENCES memberships (id)
);
CREATE INDEX posts_circle_created ON posts (circle_id, created_at, id);
CREATE INDEX posts_circle_updated ON posts (circle_id, updated_at, id);
CREATE INDEX posts_reply_to ON posts (reply_to_id);

CREATE TABLE reactions (
    post_id         TEXT NOT NULL REFERENCES posts (id),
    membership_id   TEXT NOT NULL REFERENCES memberships (id),
    kind            TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (post_id, membership_id, kind)
);

CREATE TABLE checkins (
    id              TEXT PRIMARY KEY,
    circle_id       TEXT NOT NULL REFERENCES circles (id),
    membership_id   TEXT NOT NULL REFERENCES memberships (id),
    kind            TEXT NOT NULL CHECK (kind IN ('mood', 'ok')),
    mood            BIGINT,
    note            TEXT,
    wants_contact   BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL
);
CREATE INDEX checkins_circle ON checkins (circle_id, created_at, id);
CREATE INDEX checkins_membership ON checkins (membership_id, created_at);

CREATE TABLE idempotency_keys (
    scope           TEXT NOT NULL,
    idem_key        TEXT NOT NULL,
    fingerprint     TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    status_code     BIGINT,
    content_type    TEXT,
    response_body   TEXT,            -- tokens removed; see reissue_account_id
    reissue_account_id TEXT,         -- a replay opens a fresh session for this account
    PRIMARY KEY (scope, idem_key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
