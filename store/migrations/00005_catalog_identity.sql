-- +goose Up
-- The catalog's identity: one row written once, when the schema is created, so that a
-- search index can tell which database it was built from. Another database (or a copy
-- given a new id) is another catalog even when it holds as many books.
CREATE TABLE catalog_identity (
    singleton  BOOL PRIMARY KEY DEFAULT true CHECK (singleton),
    id         UUID NOT NULL DEFAULT gen_random_uuid(),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO catalog_identity (singleton) VALUES (true) ON CONFLICT (singleton) DO NOTHING;

-- +goose Down
SELECT 1;
