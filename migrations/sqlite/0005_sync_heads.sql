-- Sync positions for the inbox (per account) and check-ins (per circle).
-- Writes leave change_seq at 0; a reader asking for changes first numbers
-- every row still at 0 with the stream's next number, holding the stream's
-- head row until commit (src/http/sync.rs). Rows are numbered in the order
-- readers first saw them committed, so a sync from a number misses nothing,
-- whatever order the writes committed in (timestamps could not promise that).
CREATE TABLE sync_heads (
    stream  TEXT PRIMARY KEY,
    seq     BIGINT NOT NULL
);
ALTER TABLE notifications ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE checkins ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0;

-- Existing rows: numbered by their times, which keeps the order they had.
UPDATE notifications SET change_seq = updated_at;
UPDATE checkins SET change_seq = created_at;
INSERT INTO sync_heads (stream, seq)
    SELECT 'notifications:' || account_id, MAX(change_seq) FROM notifications GROUP BY account_id;
INSERT INTO sync_heads (stream, seq)
    SELECT 'checkins:' || circle_id, MAX(change_seq) FROM checkins GROUP BY circle_id;

CREATE INDEX notifications_account_change ON notifications (account_id, change_seq, id);
CREATE INDEX checkins_circle_change ON checkins (circle_id, change_seq, id);
