-- +goose Up
-- How far the outbox has been pruned: the creation time of the newest event Prune
-- deleted (one row, moved forward in the transaction that deletes). A search index
-- whose outbox position is older may have missed a pruned event (rebuild); one whose
-- position is newer than every event kept or pruned reflects changes this database
-- does not have (a restored backup: rebuild). A database pruned before this table
-- existed starts from its oldest published event kept (less the indexer's minute of
-- replay margin), or from now when it keeps none.
CREATE TABLE outbox_pruned (
    singleton BOOL PRIMARY KEY DEFAULT true CHECK (singleton),
    up_to     TIMESTAMPTZ NOT NULL
);
INSERT INTO outbox_pruned (singleton, up_to)
SELECT true, COALESCE(min(created_at) - INTERVAL '1 minute', now()) FROM outbox WHERE published_at IS NOT NULL
ON CONFLICT (singleton) DO NOTHING;

-- +goose Down
SELECT 1;
