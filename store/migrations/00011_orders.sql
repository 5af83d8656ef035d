-- +goose Up
-- Orders placed at checkout. Money is integer cents; the cost columns are what
-- bookstore.Price returned inside the checkout transaction, fixed at that moment.
--
-- Personal data (email, recipient, phone, shipping address) lives only in contact_enc: a
-- pii envelope bound to ('orders', 'contact_enc', id). email_index is the blind index of
-- the normalised email (guest lookups, per-customer promotion limits); cart_ref is a
-- SHA-256 of the cart id (the id is a capability and is never stored); access_hash is
-- the SHA-256 of the guest's order access token.
CREATE TABLE orders (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    number          TEXT NOT NULL,
    customer_id     UUID REFERENCES customers (id) ON DELETE SET NULL,
    email_index     BYTEA NOT NULL,
    contact_enc     BYTEA NOT NULL,
    access_hash     BYTEA NOT NULL,
    cart_ref        BYTEA NOT NULL,
    status          TEXT NOT NULL,
    currency        TEXT NOT NULL,
    subtotal_cents  INT8 NOT NULL CHECK (subtotal_cents >= 0),
    discount_cents  INT8 NOT NULL CHECK (discount_cents >= 0),
    shipping_cents  INT8 NOT NULL CHECK (shipping_cents >= 0),
    tax_cents       INT8 NOT NULL CHECK (tax_cents >= 0),
    total_cents     INT8 NOT NULL CHECK (total_cents > 0),
    shipping_method TEXT NOT NULL,
    country         TEXT NOT NULL,
    payment_method  TEXT NOT NULL,
    payment_status  TEXT NOT NULL,
    payment_ref     TEXT,
    payment_brand   TEXT,
    payment_last4   TEXT,
    payment_wallet  TEXT,
    failure_code    TEXT,
    failure_message TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    paid_at         TIMESTAMPTZ,
    event_seq       INT8 NOT NULL DEFAULT 0,
    CONSTRAINT orders_number_key UNIQUE (number)
);
-- One live order per cart: a cart whose checkout is paying or paid cannot be checked
-- out again (a second tab, a client retrying with a new key); a failed payment frees it.
CREATE UNIQUE INDEX orders_cart_live ON orders (cart_ref) WHERE status <> 'PAYMENT_FAILED';
-- The recovery loop's scan, and a customer's orders newest first.
CREATE INDEX orders_pending ON orders (created_at) WHERE status = 'PENDING_PAYMENT';
CREATE INDEX orders_customer ON orders (customer_id, created_at DESC, id DESC);

CREATE TABLE order_lines (
    order_id         UUID NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    position         INT8 NOT NULL,
    book_id          UUID NOT NULL,
    title            TEXT NOT NULL,
    quantity         INT8 NOT NULL CHECK (quantity > 0),
    unit_price_cents INT8 NOT NULL CHECK (unit_price_cents >= 0),
    total_cents      INT8 NOT NULL CHECK (total_cents >= 0),
    PRIMARY KEY (order_id, position)
);

-- The discount codes that took money off the order, with the promotion use each holds
-- (promotion_claims, keyed by the order): a failed payment releases exactly these.
CREATE TABLE order_discounts (
    order_id     UUID NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    promotion_id UUID NOT NULL,
    code         TEXT NOT NULL,
    amount_cents INT8 NOT NULL CHECK (amount_cents > 0),
    PRIMARY KEY (order_id, promotion_id)
);

-- Checkout idempotency keys, written in the transaction that creates the order. scope
-- is the customer id, or the blind index of a guest's email, so one shopper's key never
-- collides with another's; request_hash tells a retry from a key reused for another
-- request (IDEMPOTENCY_KEY_REUSED, Stripe's rule).
CREATE TABLE checkout_keys (
    scope        BYTEA NOT NULL,
    key          TEXT NOT NULL,
    request_hash BYTEA NOT NULL,
    order_id     UUID NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);

-- Every state change of an order, in order: seq counts from 1 per order (allocated under
-- the order's row lock). The subscription replays them after a seq; every row has an
-- outbox row written in the same transaction.
CREATE TABLE order_events (
    order_id UUID NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    seq      INT8 NOT NULL CHECK (seq > 0),
    type     TEXT NOT NULL,
    status   TEXT NOT NULL,
    detail   JSONB,
    at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, seq)
);

-- +goose Down
SELECT 1;
