-- +goose Up
-- The embedded test PSP's ledger. A real PSP keeps its charges in its own durable
-- database, beyond the reach of our process: a crash of the bookstore (the recovery test
-- SIGKILLs it between checkout's two transactions) must not make the PSP forget a
-- charge. This table plays that part for the test PSP. It is written only by
-- payment/testpsp, each write its own statement outside any checkout transaction, so a
-- rolled-back order cannot take a charge back with it. The primary key on the
-- idempotency key is what makes a repeated charge request a no-op.
CREATE TABLE test_psp_charges (
    idempotency_key TEXT PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,
    request_hash    BYTEA NOT NULL,
    status          TEXT NOT NULL,
    amount_cents    INT8 NOT NULL,
    currency        TEXT NOT NULL,
    method          TEXT NOT NULL,
    brand           TEXT NOT NULL,
    last4           TEXT NOT NULL,
    wallet          TEXT NOT NULL,
    failure_code    TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    refunded_at     TIMESTAMPTZ
);

-- PSP notifications (webhooks) already handled, by the PSP's event id: PSPs deliver at
-- least once, so a redelivery must find its event here and do nothing. claimed_at marks
-- an event being handled (a concurrent redelivery waits for it to finish or go stale);
-- processed_at marks it done.
CREATE TABLE webhook_events (
    provider     TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    type         TEXT NOT NULL,
    claimed_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    processed_at TIMESTAMPTZ,
    PRIMARY KEY (provider, event_id)
);

-- +goose Down
SELECT 1;
