-- +goose Up
-- Shipments of orders and their tracking history. The simulated carrier (shipping/sim)
-- keeps its state here, as a real carrier keeps it in its own system: one shipment per
-- order (the unique order_id is what makes creating it idempotent), and a tracking
-- number that is unique and random enough not to be guessed.
--
-- The recipient's name and street are never stored: the carrier only needs the
-- destination city and country, which the last-mile events show as their location.
--
-- seq is the seq of the shipment's last event. The advancing loop moves a shipment with
-- a conditional UPDATE ... WHERE seq = <the seq it read>, so of several instances
-- advancing the same shipment exactly one writes each transition; the primary key of
-- shipment_events backs that up. plan is the whole route, fixed when the shipment is
-- created, so every instance advances it the same way whatever its configuration.
-- next_at is when the next transition is due, NULL once delivered.
CREATE TABLE shipments (
    id                 UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    order_id           UUID NOT NULL UNIQUE REFERENCES orders (id),
    carrier            TEXT NOT NULL,
    tracking_number    TEXT NOT NULL UNIQUE,
    method             TEXT NOT NULL,
    status             TEXT NOT NULL,
    seq                INT8 NOT NULL,
    plan               JSONB NOT NULL,
    next_at            TIMESTAMPTZ,
    estimated_delivery TIMESTAMPTZ NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL
);
CREATE INDEX shipments_due ON shipments (next_at) WHERE next_at IS NOT NULL;

CREATE TABLE shipment_events (
    shipment_id UUID NOT NULL REFERENCES shipments (id),
    seq         INT8 NOT NULL,
    status      TEXT NOT NULL,
    location    TEXT NOT NULL,
    at          TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (shipment_id, seq)
);

-- +goose Down
SELECT 1;
