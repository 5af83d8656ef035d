package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// CatalogID returns the id written into the database when its schema was created (see
// migration 00005): a search index records it to know which catalog it reflects.
func (db *DB) CatalogID(ctx context.Context) (uuid.UUID, error) {
	var id uuid.UUID
	if err := db.Pool.QueryRow(ctx, `SELECT id FROM catalog_identity WHERE singleton`).Scan(&id); err != nil {
		return uuid.Nil, fmt.Errorf("read catalog id: %w", err)
	}
	return id, nil
}

// NewCatalogID gives the database a fresh catalog id, for a copy that must count as
// another catalog (a test database cloned from a template, a restored backup used as a
// new shop), and returns it.
func (db *DB) NewCatalogID(ctx context.Context) (uuid.UUID, error) {
	var id uuid.UUID
	if err := db.Pool.QueryRow(ctx, `UPDATE catalog_identity SET id = gen_random_uuid() WHERE singleton RETURNING id`).Scan(&id); err != nil {
		return uuid.Nil, fmt.Errorf("renew catalog id: %w", err)
	}
	return id, nil
}

// Now returns the database's clock. Outbox positions and search document versions are
// read from it so that one clock orders them, whichever machine reads.
func (db *DB) Now(ctx context.Context) (time.Time, error) {
	var t time.Time
	if err := db.Pool.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&t); err != nil {
		return time.Time{}, fmt.Errorf("read database clock: %w", err)
	}
	return t, nil
}
