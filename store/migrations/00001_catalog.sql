-- +goose Up
-- Catalog tables. Portable between CockroachDB and PostgreSQL: UUID keys from
-- gen_random_uuid(), money as INT8 cents, TIMESTAMPTZ, no sequences, no UPSERT.

CREATE TABLE authors (
    id         UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name       TEXT NOT NULL,
    -- name_key is the lower-cased, space-folded name: the import's dedup key.
    name_key   TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT authors_name_key_uq UNIQUE (name_key)
);

CREATE TABLE categories (
    id        UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    slug      TEXT NOT NULL,
    name      TEXT NOT NULL,
    parent_id UUID REFERENCES categories (id),
    CONSTRAINT categories_slug_uq UNIQUE (slug)
);

CREATE TABLE books (
    id           UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    isbn         TEXT NOT NULL,
    title        TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    price_cents  INT8 NOT NULL CHECK (price_cents >= 0),
    currency     TEXT NOT NULL DEFAULT 'USD',
    rating       FLOAT8 NOT NULL DEFAULT 0 CHECK (rating >= 0 AND rating <= 5),
    rating_count INT8 NOT NULL DEFAULT 0 CHECK (rating_count >= 0),
    sales_count  INT8 NOT NULL DEFAULT 0 CHECK (sales_count >= 0),
    -- published_on is NULL when unknown; sort keys use release_key instead so that
    -- keyset comparisons never meet a NULL.
    published_on DATE,
    release_key  DATE NOT NULL DEFAULT DATE '0001-01-01',
    publisher    TEXT,
    language     TEXT NOT NULL DEFAULT 'en',
    page_count   INT4 CHECK (page_count > 0),
    cover_url    TEXT,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT books_isbn_uq UNIQUE (isbn)
);

-- One index per sort order, each ending in id so that keyset pages are index range scans.
CREATE INDEX books_title_idx ON books (title, id);
CREATE INDEX books_price_idx ON books (price_cents, id);
CREATE INDEX books_rating_idx ON books (rating, id);
CREATE INDEX books_release_idx ON books (release_key, id);
CREATE INDEX books_sales_idx ON books (sales_count, id);

CREATE TABLE book_authors (
    book_id   UUID NOT NULL REFERENCES books (id) ON DELETE CASCADE,
    author_id UUID NOT NULL REFERENCES authors (id),
    position  INT4 NOT NULL DEFAULT 0,
    PRIMARY KEY (book_id, author_id)
);
CREATE INDEX book_authors_author_idx ON book_authors (author_id, book_id);

CREATE TABLE book_categories (
    book_id     UUID NOT NULL REFERENCES books (id) ON DELETE CASCADE,
    category_id UUID NOT NULL REFERENCES categories (id),
    PRIMARY KEY (book_id, category_id)
);
CREATE INDEX book_categories_category_idx ON book_categories (category_id, book_id);

-- inventory holds units on hand, one row per book. Checkout decrements it with a
-- conditional UPDATE (stock >= qty) in a serializable transaction; the CHECK is the
-- last line of defence against overselling.
CREATE TABLE inventory (
    book_id    UUID PRIMARY KEY REFERENCES books (id) ON DELETE CASCADE,
    stock      INT8 NOT NULL CHECK (stock >= 0),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE reviews (
    id            UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    book_id       UUID NOT NULL REFERENCES books (id) ON DELETE CASCADE,
    rating        INT2 NOT NULL CHECK (rating >= 1 AND rating <= 5),
    title         TEXT NOT NULL DEFAULT '',
    body          TEXT NOT NULL DEFAULT '',
    reviewer_name TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX reviews_book_idx ON reviews (book_id, created_at, id);

-- +goose Down
-- Migrations are forward-only; see README.
SELECT 1;
