-- +goose Up
-- A consumer reads the outbox from a floor just behind its oldest pending event
-- (store.Outbox.PendingSince), not every unpublished event of its topics again: those it
-- is done with may wait long for a slower consumer of the same topics. The events it
-- failed at (or an operator requeued) can be older than the floor; this index finds
-- them: the delivery rows neither done nor parked, few at any time.
CREATE INDEX outbox_deliveries_open_idx ON outbox_deliveries (consumer) WHERE done_at IS NULL AND parked_at IS NULL;

-- +goose Down
DROP INDEX outbox_deliveries_open_idx;
