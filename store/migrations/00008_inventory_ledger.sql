-- +goose Up
-- Every change of a book's stock is a delta with a reason, kept in an append-only ledger:
-- who (an admin's customer id, NULL for the system), when, how much, why, and the stock
-- it left. Checkout takes stock through the same path, so the ledger of a book always
-- sums to its stock since the ledger began.
CREATE TABLE stock_movements (
    id         UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    book_id    UUID NOT NULL REFERENCES books (id) ON DELETE CASCADE,
    delta      INT8 NOT NULL,
    reason     TEXT NOT NULL,
    actor_id   UUID,
    -- ref names what caused the movement when it is not an admin (an order id).
    ref        UUID,
    stock      INT8 NOT NULL CHECK (stock >= 0),
    -- When the change was made (clock_timestamp(), set by the writers, after they took
    -- the book's row lock), so "newest first" is the order the changes happened in.
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX stock_movements_book_idx ON stock_movements (book_id, created_at DESC, id DESC);

-- The opening balance of every book that had stock before the ledger began, so that a
-- book's ledger sums to its stock.
INSERT INTO stock_movements (book_id, delta, reason, stock)
SELECT book_id, stock, 'opening balance', stock FROM inventory WHERE stock <> 0;

-- import_stock is the stock the last CSV import said the book had. A re-import applies the
-- difference between the file and this baseline to the live stock, so units sold since
-- the previous import are not given back (and re-importing one file changes nothing).
-- NULL (rows from before this column) counts as the stock at the next import.
ALTER TABLE inventory ADD COLUMN import_stock INT8;

-- +goose Down
SELECT 1;
