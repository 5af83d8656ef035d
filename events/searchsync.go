package events

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/search"
	"github.com/shopfront/bookstore/store"
)

// SearchIndexer keeps a search.Index in step with the catalog: as an outbox Handler it
// re-reads every book an event names and upserts (or, when the book is gone, deletes) its
// document; Rebuild walks the whole catalog. Both are idempotent.
type SearchIndexer struct {
	DB    *store.DB
	Index search.Index
}

// syncBatch is how many books one round of reads covers (each round is five queries).
const syncBatch = 500

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
	return x.Sync(ctx, ids)
}

// Sync re-indexes the books with these ids from the database.
func (x *SearchIndexer) Sync(ctx context.Context, ids []uuid.UUID) error {
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
			if err := x.Index.Upsert(ctx, docs); err != nil {
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
			if err := x.Index.Delete(ctx, gone); err != nil {
				return fmt.Errorf("remove %d books from the index: %w", len(gone), err)
			}
		}
	}
	return nil
}

// Rebuild indexes every book in the catalog (in id order, syncBatch at a time) and
// reports progress after each batch. Books deleted meanwhile are removed by their events.
func (x *SearchIndexer) Rebuild(ctx context.Context, progress func(done int)) (int, error) {
	after, done := uuid.Nil, 0
	for {
		ids, err := x.DB.Books.IDsAfter(ctx, after, syncBatch)
		if err != nil {
			return done, err
		}
		if len(ids) == 0 {
			return done, nil
		}
		if err := x.Sync(ctx, ids); err != nil {
			return done, err
		}
		done += len(ids)
		after = ids[len(ids)-1]
		if progress != nil {
			progress(done)
		}
	}
}

func (x *SearchIndexer) documents(ctx context.Context, ids []uuid.UUID, tree categoryIndex) ([]search.Document, error) {
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
			InStock: stock[b.ID] > 0, Language: strings.ToLower(b.Language),
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
