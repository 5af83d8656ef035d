package events

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/search"
	"github.com/shopfront/bookstore/store"
)

// SearchIndexer keeps a search.Index in step with the catalog: as an outbox Handler it
// re-reads every book an event names and upserts (or, when the book is gone, deletes) its
// document, and records the outbox position it reached in the index's meta; Rebuild
// builds a fresh index of the whole catalog and swaps it in; CatchUp decides at start
// whether the index reflects this catalog. All are idempotent.
//
// Documents are versioned with the database clock read before the book is (see
// search.Document.Version), so that of two writers the one that read later wins
// whatever the order their writes arrive in.
type SearchIndexer struct {
	DB    *store.DB
	Index search.Index

	mu       sync.Mutex
	recorded time.Time // when advance last wrote the position
}

// recordEvery spaces the writes of the outbox position (a Meilisearch write each): the
// position only needs to be within replayMargin of the truth.
const recordEvery = 5 * time.Second

// replayMargin is how far before an outbox position events are read again: an event's
// created_at is its transaction's start, so a transaction that started before the
// position may commit after it.
const replayMargin = time.Minute

// syncBatch is how many books one round of reads covers (each round is five queries).
const syncBatch = 500

// Consumer implements Consumer.
func (x *SearchIndexer) Consumer() (string, []string) {
	return "search-index", []string{store.TopicBookChanged}
}

// Handle implements Handler.
func (x *SearchIndexer) Handle(ctx context.Context, evs []store.Event) error {
	seen := make(map[uuid.UUID]bool, len(evs))
	var ids []uuid.UUID
	for _, e := range evs {
		if e.Topic == store.TopicBookChanged && !seen[e.AggregateID] {
			seen[e.AggregateID] = true
			ids = append(ids, e.AggregateID)
		}
	}
	if err := x.Sync(ctx, ids); err != nil {
		return err
	}
	var pos time.Time
	for _, e := range evs {
		if e.CreatedAt.After(pos) {
			pos = e.CreatedAt
		}
	}
	return x.advance(ctx, pos)
}

// advance records pos as the index's outbox position, if the index keeps meta and pos
// is newer than what it has.
func (x *SearchIndexer) advance(ctx context.Context, pos time.Time) error {
	mx, ok := x.Index.(interface {
		Meta(context.Context) (search.Meta, error)
		SetMeta(context.Context, search.Meta) error
	})
	if !ok || pos.IsZero() {
		return nil
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if time.Since(x.recorded) < recordEvery {
		return nil
	}
	m, err := mx.Meta(ctx)
	if err != nil {
		return err
	}
	if m.CatalogID == uuid.Nil || !pos.After(m.Position) {
		return nil // an index never rebuilt from this catalog has no position to keep
	}
	m.Position = pos
	if err := mx.SetMeta(ctx, m); err != nil {
		return err
	}
	x.recorded = time.Now()
	return nil
}

// Sync re-indexes the books with these ids from the database.
func (x *SearchIndexer) Sync(ctx context.Context, ids []uuid.UUID) error {
	return x.syncInto(ctx, x.Index, ids)
}

func (x *SearchIndexer) syncInto(ctx context.Context, w search.Writer, ids []uuid.UUID) error {
	if len(ids) == 0 {
		return nil
	}
	cats, err := x.DB.Categories.All(ctx)
	if err != nil {
		return err
	}
	tree := newCategoryIndex(cats)
	for start := 0; start < len(ids); start += syncBatch {
		batch := ids[start:min(start+syncBatch, len(ids))]
		docs, err := x.documents(ctx, batch, tree)
		if err != nil {
			return err
		}
		if len(docs) > 0 {
			if err := w.Upsert(ctx, docs); err != nil {
				return fmt.Errorf("index %d books: %w", len(docs), err)
			}
		}
		if len(docs) < len(batch) {
			found := make(map[uuid.UUID]bool, len(docs))
			for _, d := range docs {
				found[d.ID] = true
			}
			var gone []uuid.UUID
			for _, id := range batch {
				if !found[id] {
					gone = append(gone, id)
				}
			}
			if err := w.Delete(ctx, gone); err != nil {
				return fmt.Errorf("remove %d books from the index: %w", len(gone), err)
			}
		}
	}
	return nil
}

// Rebuild builds a fresh index of every book in the catalog (in id order, syncBatch at
// a time, reporting progress after each batch) and swaps it in for the live one, which
// serves searches meanwhile: afterwards the index holds exactly the catalog's books.
// The index must be a search.Rebuildable. Books that changed while the catalog was
// read (their events were handled by the old index) are read again after the swap.
func (x *SearchIndexer) Rebuild(ctx context.Context, progress func(done int)) (int, error) {
	rb, ok := x.Index.(search.Rebuildable)
	if !ok {
		return 0, fmt.Errorf("rebuild: a %T cannot be rebuilt into a fresh index", x.Index)
	}
	catalog, err := x.DB.CatalogID(ctx)
	if err != nil {
		return 0, err
	}
	// The position is the newest event known (kept or pruned), not the clock: then a
	// position later than every event the database knows means the index saw changes
	// the database lost (CatchUp).
	start, err := x.position(ctx)
	if err != nil {
		return 0, err
	}
	done := 0
	err = rb.Rebuild(ctx, search.Meta{CatalogID: catalog, Position: start}, func(w search.Writer) error {
		after := uuid.Nil
		for {
			ids, err := x.DB.Books.IDsAfter(ctx, after, syncBatch)
			if err != nil || len(ids) == 0 {
				return err
			}
			if err := x.syncInto(ctx, w, ids); err != nil {
				return err
			}
			done += len(ids)
			after = ids[len(ids)-1]
			if progress != nil {
				progress(done)
			}
		}
	})
	if err != nil {
		return done, err
	}
	return done, x.replay(ctx, start)
}

// position is the outbox position a rebuild starting now reflects: the newest event
// the database knows, kept or pruned.
func (x *SearchIndexer) position(ctx context.Context) (time.Time, error) {
	newest, pruned, err := x.DB.Outbox.Bounds(ctx)
	return later(newest, pruned), err
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// replay re-indexes the books of every event created since pos (less replayMargin),
// published or not.
func (x *SearchIndexer) replay(ctx context.Context, pos time.Time) error {
	ids, err := x.DB.Outbox.AggregatesSince(ctx, store.TopicBookChanged, pos.Add(-replayMargin))
	if err != nil {
		return err
	}
	return x.Sync(ctx, ids)
}

// CatchUp makes the index reflect this database at start-up, before the relay runs.
// It rebuilds (see Rebuild) when the index was built from another catalog or never
// rebuilt at all, when events it may have missed were already pruned from the outbox
// (its position is older than the pruned-up-to mark), when it applied events the
// database does not have (its position is later than the newest event kept or pruned: a
// restored backup), or when it does not hold as many documents as the catalog has books; otherwise it re-reads the books of the events
// since its position, which another process may have handled. reason says why it
// rebuilt ("" when it did not); n is the number of books indexed by a rebuild.
func (x *SearchIndexer) CatchUp(ctx context.Context) (reason string, n int, err error) {
	rb, ok := x.Index.(search.Rebuildable)
	if !ok {
		return "", 0, fmt.Errorf("catch up: a %T keeps no meta", x.Index)
	}
	m, err := rb.Meta(ctx)
	if err != nil {
		return "", 0, err
	}
	catalog, err := x.DB.CatalogID(ctx)
	if err != nil {
		return "", 0, err
	}
	newest, pruned, err := x.DB.Outbox.Bounds(ctx)
	if err != nil {
		return "", 0, err
	}
	have, err := x.Index.Count(ctx)
	if err != nil {
		return "", 0, err
	}
	want, err := x.DB.Books.Count(ctx, bookstore.BookFilter{})
	if err != nil {
		return "", 0, err
	}
	switch {
	case m.CatalogID == uuid.Nil:
		reason = "the index records no catalog"
	case m.CatalogID != catalog:
		reason = fmt.Sprintf("the index reflects catalog %s, the database is catalog %s", m.CatalogID, catalog)
	case pruned.After(m.Position):
		// Events after the position were pruned: handled by another process, or by
		// this one after it last recorded its position.
		reason = fmt.Sprintf("events after the index's position %s were pruned (up to %s)",
			m.Position.UTC().Format(time.RFC3339Nano), pruned.UTC().Format(time.RFC3339Nano))
	case m.Position.After(newest) && m.Position.After(pruned):
		// The index applied an event this database never had: it was restored from a
		// backup, or copied, keeping its catalog id.
		reason = fmt.Sprintf("the index's position %s is later than the database's newest outbox event %s (a restored backup or a copy?)",
			m.Position.UTC().Format(time.RFC3339Nano), later(newest, pruned).UTC().Format(time.RFC3339Nano))
	case int64(have) != want:
		reason = fmt.Sprintf("the index holds %d documents, the catalog %d books", have, want)
	}
	if reason == "" {
		return "", 0, x.replay(ctx, m.Position)
	}
	n, err = x.Rebuild(ctx, nil)
	return reason, n, err
}

func (x *SearchIndexer) documents(ctx context.Context, ids []uuid.UUID, tree categoryIndex) ([]search.Document, error) {
	// Read before the book: the documents reflect at least every commit before it.
	now, err := x.DB.Now(ctx)
	if err != nil {
		return nil, err
	}
	books, err := x.DB.Books.ByIDs(ctx, ids)
	if err != nil {
		return nil, err
	}
	authors, err := x.DB.Authors.ByBooks(ctx, ids)
	if err != nil {
		return nil, err
	}
	catIDs, err := x.DB.Categories.IDsByBooks(ctx, ids)
	if err != nil {
		return nil, err
	}
	stock, err := x.DB.Inventory.Stock(ctx, ids)
	if err != nil {
		return nil, err
	}
	docs := make([]search.Document, 0, len(books))
	for _, b := range books {
		d := search.Document{
			ID: b.ID, ISBN: b.ISBN, Title: b.Title, Description: b.Description,
			PriceCents: b.PriceCents, Rating: b.Rating, RatingCount: b.RatingCount, SalesCount: b.SalesCount,
			InStock: stock[b.ID] > 0, Language: strings.ToLower(b.Language), Version: now.UnixMicro(),
		}
		if b.PublishedAt != nil {
			d.PublishedAt = b.PublishedAt.Time
		}
		for _, a := range authors[b.ID] {
			d.Authors = append(d.Authors, a.Name)
			d.AuthorIDs = append(d.AuthorIDs, a.ID)
		}
		d.Categories, d.CategoryNames = tree.withAncestors(catIDs[b.ID])
		docs = append(docs, d)
	}
	return docs, nil
}

// categoryIndex resolves category ids to slugs and names, ancestors included: a book in
// "Epic Fantasy" is found when filtering by its parent genre too.
type categoryIndex map[uuid.UUID]*bookstore.Category

func newCategoryIndex(cats []*bookstore.Category) categoryIndex {
	m := make(categoryIndex, len(cats))
	for _, c := range cats {
		m[c.ID] = c
	}
	return m
}

func (t categoryIndex) withAncestors(ids []uuid.UUID) (slugs, names []string) {
	seen := map[uuid.UUID]bool{}
	for _, id := range ids {
		for c := t[id]; c != nil && !seen[c.ID]; {
			seen[c.ID] = true
			slugs, names = append(slugs, c.Slug), append(names, c.Name)
			if c.ParentID == nil {
				break
			}
			c = t[*c.ParentID]
		}
	}
	return slugs, names
}
