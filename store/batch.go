package store

import (
	"context"

	"github.com/shopfront/bookstore/catalog"
)

// Batcher streams records into Load in batches of a fixed size, so loading a file or a
// generated catalog needs memory for one batch, not the whole catalog.
type Batcher struct {
	db    *DB
	batch []catalog.Record
	// Loaded counts records written; OnFailed, if set, receives each refused record.
	Loaded   int
	OnFailed func(*LoadError)
}

// NewBatcher returns a Batcher that loads size records per transaction.
func (db *DB) NewBatcher(size int) *Batcher {
	return &Batcher{db: db, batch: make([]catalog.Record, 0, size)}
}

// Add queues r, loading the batch when it is full.
func (b *Batcher) Add(ctx context.Context, r catalog.Record) error {
	b.batch = append(b.batch, r)
	if len(b.batch) < cap(b.batch) {
		return nil
	}
	return b.Flush(ctx)
}

// Flush loads whatever is queued.
func (b *Batcher) Flush(ctx context.Context) error {
	if len(b.batch) == 0 {
		return nil
	}
	failed, err := b.db.Load(ctx, b.batch)
	if err != nil {
		return err
	}
	for _, f := range failed {
		if b.OnFailed != nil {
			b.OnFailed(f)
		}
	}
	b.Loaded += len(b.batch) - len(failed)
	b.batch = b.batch[:0]
	return nil
}
