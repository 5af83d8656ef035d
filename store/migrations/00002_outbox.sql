-- +goose Up
-- The transactional outbox: every change that others must hear about (the search index,
-- caches, subscribers) writes a row here in the same transaction as the change itself, so
-- an event is published if and only if the change committed. A relay reads unpublished
-- rows in order, hands them to its handlers (which are idempotent: a row may be handled
-- twice after a crash, never zero times) and then marks them published.
CREATE TABLE outbox (
    id           UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    topic        TEXT NOT NULL,
    aggregate_id UUID NOT NULL,
    payload      JSONB NOT NULL DEFAULT '{}',
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    published_at TIMESTAMPTZ
);
-- Only unpublished rows are scanned; partial indexes exist on both engines.
CREATE INDEX outbox_pending_idx ON outbox (created_at, id) WHERE published_at IS NULL;
CREATE INDEX outbox_published_idx ON outbox (published_at) WHERE published_at IS NOT NULL;

-- +goose Down
SELECT 1;
