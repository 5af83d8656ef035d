-- +goose Up
-- One outbox relay runs at a time across instances: it holds a lease row, renewed on
-- every step, so events are handled in order and no instance writes an older read of a
-- book over a newer one. An event that fails alone while its neighbours succeed is parked
-- (kept, with its error, for an operator) instead of blocking every event behind it.
CREATE TABLE relay_leases (
    name       TEXT PRIMARY KEY,
    holder     UUID NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
ALTER TABLE outbox ADD COLUMN parked_at TIMESTAMPTZ, ADD COLUMN last_error TEXT;

-- +goose Down
SELECT 1;
