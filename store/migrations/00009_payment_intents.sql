-- +goose Up
-- Which PSP payment (a Stripe PaymentIntent) an idempotency key (an order id) made. The
-- Stripe adapter writes the row after creating the intent unconfirmed and before
-- confirming it, so every intent that can move money is found again by its id, which
-- Stripe reads strongly consistently (its search lags by up to a minute). request_hash
-- tells a retry from a key reused for another request. voided_at closes the key
-- (payment.Provider.Void): a voided row without an intent_id was closed before any
-- intent existed, and a charge that arrives later cancels its intent instead of
-- confirming it.
CREATE TABLE payment_intents (
    provider        TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    intent_id       TEXT,
    request_hash    BYTEA,
    voided_at       TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, idempotency_key)
);

-- +goose Down
SELECT 1;
