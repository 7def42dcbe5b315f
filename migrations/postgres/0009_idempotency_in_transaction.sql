-- Keys are now claimed inside the handler's own transaction and committed
-- with their response, so a committed key always has one. A key left
-- pending by an older server (its request crashed) is forgotten: its
-- write either committed without it or never happened.
DELETE FROM idempotency_keys WHERE status_code IS NULL;
