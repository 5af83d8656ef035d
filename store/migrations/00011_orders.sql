-- +goose Up
-- Placeholder so that shipments can reference orders on the shipping branch; the
-- orders branch replaces this file with the real table.
CREATE TABLE orders (id UUID PRIMARY KEY DEFAULT gen_random_uuid());

-- +goose Down
SELECT 1;
