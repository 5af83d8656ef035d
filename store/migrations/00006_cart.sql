-- +goose Up
-- Carts (when Redis is not configured) and promotions with their redemption ledger.
-- A cart row holds only book ids, quantities and codes: prices are computed when read.
-- The id is the cart's random token (the capability of a guest cart); version is the
-- optimistic-concurrency counter every write compares and bumps; expired rows are swept.
CREATE TABLE carts (
    id          TEXT PRIMARY KEY,
    customer_id UUID REFERENCES customers (id) ON DELETE CASCADE,
    lines       JSONB NOT NULL,
    codes       JSONB NOT NULL,
    version     INT8 NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX carts_customer_idx ON carts (customer_id, created_at);
CREATE INDEX carts_expires_idx ON carts (expires_at);

-- Codes are stored upper-cased: lookups are case-insensitive by normalising the input.
-- used counts redemptions claimed by checkout (conditional update: used < usage_limit).
CREATE TABLE promotions (
    id                 UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    code               TEXT NOT NULL,
    description        TEXT NOT NULL DEFAULT '',
    kind               TEXT NOT NULL CHECK (kind IN ('PERCENT', 'FIXED_AMOUNT')),
    value              INT8 NOT NULL CHECK (value > 0),
    min_subtotal_cents INT8 NOT NULL DEFAULT 0 CHECK (min_subtotal_cents >= 0),
    category_id        UUID REFERENCES categories (id),
    starts_at          TIMESTAMPTZ,
    ends_at            TIMESTAMPTZ,
    usage_limit        INT8 CHECK (usage_limit >= 0),
    per_customer_limit INT8 CHECK (per_customer_limit > 0),
    used               INT8 NOT NULL DEFAULT 0 CHECK (used >= 0),
    combinable         BOOL NOT NULL DEFAULT false,
    active             BOOL NOT NULL DEFAULT true,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT promotions_code_uq UNIQUE (code)
);

-- One row per (promotion, redeemer) of a per-customer limited promotion. The redeemer
-- is the blind index (keyed HMAC) of the normalised email, so guests and customers with
-- one email share one count and no email is stored in plaintext.
CREATE TABLE promotion_redemptions (
    promotion_id UUID NOT NULL REFERENCES promotions (id) ON DELETE CASCADE,
    redeemer     BYTEA NOT NULL,
    uses         INT8 NOT NULL CHECK (uses >= 0),
    PRIMARY KEY (promotion_id, redeemer)
);

-- One row per claimed use, keyed by the order that claimed it: a release gives back only
-- a use that its order holds, once, so a retried or mistaken release cannot free another
-- order's use.
CREATE TABLE promotion_claims (
    promotion_id UUID NOT NULL REFERENCES promotions (id) ON DELETE CASCADE,
    order_id     UUID NOT NULL,
    redeemer     BYTEA,
    claimed_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (promotion_id, order_id)
);

-- +goose Down
SELECT 1;
