-- +goose Up
-- Customer accounts, their addresses and refresh tokens. Personal data is stored only
-- encrypted (package pii: versioned envelope ciphertexts bound to table, column and row);
-- email_index is a keyed HMAC of the normalised email, the only way to find a customer
-- by email. Portable between CockroachDB and PostgreSQL.

CREATE TABLE customers (
    id            UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    email_index   BYTEA NOT NULL CHECK (length(email_index) = 32),
    email_enc     BYTEA NOT NULL,
    name_enc      BYTEA NOT NULL,
    phone_enc     BYTEA,
    -- argon2id PHC string: $argon2id$v=19$m=...,t=...,p=...$salt$hash
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL DEFAULT 'CUSTOMER' CHECK (role IN ('CUSTOMER', 'ADMIN')),
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT customers_email_index_uq UNIQUE (email_index)
);

CREATE TABLE addresses (
    id          UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    customer_id UUID NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    -- the whole address (lines, city, postal code, country...) as one encrypted document
    data_enc    BYTEA NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX addresses_customer_idx ON addresses (customer_id, created_at, id);

-- One row per refresh token ever issued, keyed by the SHA-256 of the token (random, so
-- the key spreads evenly over CockroachDB ranges). A family is one sign-in session: each
-- refresh marks its token used and inserts the next one in the same family; presenting a
-- used or revoked token revokes the family. family_expires_at is the session's absolute
-- end, copied to every token of the family.
CREATE TABLE refresh_tokens (
    token_hash        BYTEA PRIMARY KEY CHECK (length(token_hash) = 32),
    family_id         UUID NOT NULL,
    customer_id       UUID NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    expires_at        TIMESTAMPTZ NOT NULL,
    family_expires_at TIMESTAMPTZ NOT NULL,
    used_at           TIMESTAMPTZ,
    revoked_at        TIMESTAMPTZ,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_customer_idx ON refresh_tokens (customer_id);
-- for purging tokens whose session has ended
CREATE INDEX refresh_tokens_family_expires_idx ON refresh_tokens (family_expires_at);

-- +goose Down
-- Migrations are forward-only; see README.
SELECT 1;
