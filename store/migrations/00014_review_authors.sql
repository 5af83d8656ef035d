-- +goose NO TRANSACTION
-- +goose Up
-- Reviews by buyers (reviewCreate): a review written through the API names its author,
-- and a customer reviews a book once. Reviews from imports and the demo seed have no
-- author (NULL), and NULLs never collide in a unique index, so they are unaffected.
-- Deleting an account keeps its reviews, anonymous (the stored reviewer_name is a first
-- name only, see bookstore.ReviewerName).
--
-- No transaction: CockroachDB applies a schema change atomically only as a statement of
-- its own (an implicit transaction), and here the index needs the column added just
-- before. Each statement is idempotent, so a migration interrupted between them is
-- finished by running it again.
ALTER TABLE reviews ADD COLUMN IF NOT EXISTS customer_id UUID REFERENCES customers (id) ON DELETE SET NULL;

CREATE UNIQUE INDEX IF NOT EXISTS reviews_book_customer_key ON reviews (book_id, customer_id);

-- +goose Down
-- Migrations are forward-only; see README.
SELECT 1;
