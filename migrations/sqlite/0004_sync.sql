-- Sync positions for posts. Every change to a circle's posts takes the
-- circle's next change number inside the writing transaction, holding the
-- circle's row until commit, so a circle's numbers commit in order and a sync
-- from a number misses nothing (timestamps could commit out of order).
ALTER TABLE circles ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0;
-- The number a post was created with (the feed's order) and the number of
-- its latest change (the sync's order).
ALTER TABLE posts ADD COLUMN created_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE posts ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0;

-- Existing posts: creations numbered 1..n in created order, their latest
-- changes n+1..2n in updated order.
UPDATE posts SET created_seq = (
    SELECT COUNT(*) FROM posts p
    WHERE p.circle_id = posts.circle_id
      AND (p.created_at < posts.created_at OR (p.created_at = posts.created_at AND p.id <= posts.id)));
UPDATE posts SET change_seq = (
    SELECT COUNT(*) FROM posts p WHERE p.circle_id = posts.circle_id) + (
    SELECT COUNT(*) FROM posts p
    WHERE p.circle_id = posts.circle_id
      AND (p.updated_at < posts.updated_at OR (p.updated_at = posts.updated_at AND p.id <= posts.id)));
UPDATE circles SET change_seq = 2 * (SELECT COUNT(*) FROM posts WHERE posts.circle_id = circles.id);

CREATE UNIQUE INDEX posts_circle_created_seq ON posts (circle_id, created_seq);
CREATE UNIQUE INDEX posts_circle_change_seq ON posts (circle_id, change_seq);
DROP INDEX posts_circle_updated;
