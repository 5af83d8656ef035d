-- +goose Up
-- The outbox, fit to carry orders (see events' package comment for the design).
--
-- Fenced leases: every acquisition of a lease by a new holder (or after it expired) adds
-- one to token, and a holder's writes check its token in the same statement, so a holder
-- whose lease ran out mid-batch cannot write over its successor's work. Releasing a
-- lease expires it and keeps the row, so tokens never go back.
ALTER TABLE relay_leases ADD COLUMN token INT8 NOT NULL DEFAULT 1;

-- Each consumer of the outbox (search index, cache broadcast, low-stock alerts, later
-- order emails, subscriptions, shipping) reads the topics it registered here and keeps
-- its own delivery state, so one stuck or failing consumer delays no other.
CREATE TABLE outbox_consumers (
    name          TEXT PRIMARY KEY,
    topics        TEXT[] NOT NULL,
    registered_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One row per event a consumer handled or failed: done (done_at), waiting to be retried
-- (retry_at, attempts, last_error) or parked after its last attempt (parked_at, kept
-- for an operator: `bookstore outbox requeue`). An event is published (outbox.
-- published_at, then pruned) once every consumer of its topic is done with it; its rows
-- here are deleted with it.
CREATE TABLE outbox_deliveries (
    event_id   UUID NOT NULL,
    consumer   TEXT NOT NULL,
    attempts   INT8 NOT NULL DEFAULT 0,
    retry_at   TIMESTAMPTZ,
    done_at    TIMESTAMPTZ,
    parked_at  TIMESTAMPTZ,
    last_error TEXT,
    PRIMARY KEY (event_id, consumer)
);
CREATE INDEX outbox_deliveries_parked_idx ON outbox_deliveries (consumer) WHERE parked_at IS NOT NULL;

-- A consumer scans the unpublished events of its topics only: a backlog of one topic
-- (a search engine down for hours) costs the consumers of other topics nothing.
CREATE INDEX outbox_topic_pending_idx ON outbox (topic, created_at, id) WHERE published_at IS NULL;

-- outbox.parked_at (migration 4) was set by the single relay for every handler at once;
-- the consumers ignore it and retry such events, with bounded attempts each.

-- +goose Down
SELECT 1;
