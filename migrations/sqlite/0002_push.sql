-- Push delivery: devices, the notification inbox, the delivery outbox,
-- per-account preferences, and providers paused for bad credentials.

CREATE TABLE devices (
    id                  TEXT PRIMARY KEY,
    account_id          TEXT NOT NULL REFERENCES accounts (id),
    kind                TEXT NOT NULL CHECK (kind IN ('apns', 'fcm', 'webpush')),
    token_key           TEXT NOT NULL,   -- SHA-256 of the token or endpoint: the uniqueness key
    token               TEXT NOT NULL,   -- APNs device token, FCM registration token, Web Push endpoint
    apns_topic          TEXT,
    apns_environment    TEXT CHECK (apns_environment IN ('sandbox', 'production')),
    webpush_p256dh      TEXT,
    webpush_auth        TEXT,
    label               TEXT,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    removed_at          BIGINT,          -- unregistered, or dropped after a provider said the token is dead
    removed_reason      TEXT
);
-- One live registration per token; removed rows keep their history.
CREATE UNIQUE INDEX devices_token ON devices (kind, token_key) WHERE removed_at IS NULL;
CREATE INDEX devices_account ON devices (account_id);

-- The inbox: the truth, whether or not push succeeds.
CREATE TABLE notifications (
    id              TEXT PRIMARY KEY,
    account_id      TEXT NOT NULL REFERENCES accounts (id),
    kind            TEXT NOT NULL,
    locale          TEXT NOT NULL,
    title           TEXT NOT NULL,
    body            TEXT NOT NULL,
    deep_link       TEXT NOT NULL,
    circle_id       TEXT,
    post_id         TEXT,
    membership_id   TEXT,
    alert_id        TEXT,
    collapse_key    TEXT,            -- digests: one open item per key
    item_count      BIGINT NOT NULL DEFAULT 1,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    read_at         BIGINT
);
CREATE INDEX notifications_account ON notifications (account_id, created_at, id);
CREATE INDEX notifications_unread ON notifications (account_id, read_at);
CREATE INDEX notifications_collapse ON notifications (account_id, collapse_key);

-- The outbox: one row per notification per device, written in the same
-- transaction as the notification.
CREATE TABLE deliveries (
    id              TEXT PRIMARY KEY,
    notification_id TEXT NOT NULL REFERENCES notifications (id),
    device_id       TEXT NOT NULL REFERENCES devices (id),
    provider        TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'dropped', 'expired', 'failed', 'superseded')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    not_before      BIGINT NOT NULL,  -- due time: quiet hours, digests and backoff push it later
    lease_until     BIGINT,           -- claimed by a worker until then
    expires_at      BIGINT NOT NULL,  -- created_at + TTL: no retries after this
    ttl_secs        BIGINT NOT NULL,
    urgency         TEXT NOT NULL,
    collapse_key    TEXT,
    outcome         TEXT,             -- the last classified provider response
    last_status     BIGINT,           -- the last HTTP status, if any
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    sent_at         BIGINT
);
CREATE INDEX deliveries_due ON deliveries (status, not_before);
CREATE INDEX deliveries_notification ON deliveries (notification_id);
CREATE INDEX deliveries_device ON deliveries (device_id);

CREATE TABLE notification_preferences (
    account_id  TEXT PRIMARY KEY REFERENCES accounts (id),
    new_posts   TEXT NOT NULL CHECK (new_posts IN ('immediate', 'digest', 'off')),
    replies     BIGINT NOT NULL,
    reactions   BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- A provider whose credentials were refused waits here; its tokens are kept.
CREATE TABLE provider_pauses (
    provider        TEXT PRIMARY KEY,
    paused_until    BIGINT NOT NULL,
    reason          TEXT NOT NULL,
    paused_at       BIGINT NOT NULL
);
