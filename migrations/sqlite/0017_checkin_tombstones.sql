-- An erased member's check-ins become tombstones (no mood, note or contact
-- request, `removed_at` set, renumbered for sync) instead of disappearing,
-- so that apps which synced them learn to drop their copies.
ALTER TABLE checkins ADD COLUMN removed_at BIGINT;
