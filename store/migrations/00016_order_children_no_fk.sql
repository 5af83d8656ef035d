-- +goose Up
-- An order's lines, discounts, events and idempotency key no longer carry a foreign key
-- to orders. Each is written only in the transaction that creates the order (lines,
-- discounts, key, the first event) or under the order's row lock (later events), and
-- orders are never deleted, so the keys guarded against nothing the code does; but each
-- check is a serializable read of the orders primary key's index page holding the new
-- order, and every concurrent checkout inserts into those pages: under load most
-- checkout transactions failed with serialization errors (40001) and were retried (the
-- checkout bench: 2,500 rollbacks in 15 s at 150 purchases/s with the keys, 300 at
-- 200/s without; see docs-perf.md).
ALTER TABLE order_lines DROP CONSTRAINT IF EXISTS order_lines_order_id_fkey;
ALTER TABLE order_discounts DROP CONSTRAINT IF EXISTS order_discounts_order_id_fkey;
ALTER TABLE order_events DROP CONSTRAINT IF EXISTS order_events_order_id_fkey;
ALTER TABLE checkout_keys DROP CONSTRAINT IF EXISTS checkout_keys_order_id_fkey;

-- +goose Down
SELECT 1;
