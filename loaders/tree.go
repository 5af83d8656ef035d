package loaders

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/store"
)

// Tree is the category tree, loaded once per request (it is tens of rows) and walked in
// memory for parents, children, slugs and subtrees.
type Tree struct {
	Roots    []*bookstore.Category
	byID     map[uuid.UUID]*bookstore.Category
	bySlug   map[string]*bookstore.Category
	children map[uuid.UUID][]*bookstore.Category
}

// Tree returns the category tree: from the shared TreeCache when there is one, else
// queried once per request.
func (l *Loaders) Tree(ctx context.Context) (*Tree, error) {
	l.treeOnce.Do(func() {
		if l.trees != nil {
			l.tree, l.treeError = l.trees.Get(ctx)
			return
		}
		cats, err := l.db.Categories.All(ctx)
		if err != nil {
			l.treeError = err
			return
		}
		l.tree = NewTree(cats)
	})
	return l.tree, l.treeError
}

// TreeCache shares the category tree across requests for TTL. Every page needs the tree
// (slugs, parents, subtrees) and it changes only when an import adds a category, so
// re-reading it per request is a round trip spent on nothing. A new category shows up
// within TTL.
type TreeCache struct {
	db  *store.DB
	ttl time.Duration
	cur atomic.Pointer[cachedTree]
	mu  sync.Mutex // one refresh at a time
}

type cachedTree struct {
	tree    *Tree
	expires time.Time
}

// NewTreeCache returns a cache of db's category tree that refreshes after ttl.
func NewTreeCache(db *store.DB, ttl time.Duration) *TreeCache {
	return &TreeCache{db: db, ttl: ttl}
}

// Get returns the cached tree, refreshing it when it has expired.
func (c *TreeCache) Get(ctx context.Context) (*Tree, error) {
	if t := c.cur.Load(); t != nil && time.Now().Before(t.expires) {
		return t.tree, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if t := c.cur.Load(); t != nil && time.Now().Before(t.expires) {
		return t.tree, nil // refreshed while we waited
	}
	cats, err := c.db.Categories.All(ctx)
	if err != nil {
		return nil, err
	}
	t := &cachedTree{tree: NewTree(cats), expires: time.Now().Add(c.ttl)}
	c.cur.Store(t)
	return t.tree, nil
}

// NewTree indexes cats (parents listed before children).
func NewTree(cats []*bookstore.Category) *Tree {
	t := &Tree{
		byID:     make(map[uuid.UUID]*bookstore.Category, len(cats)),
		bySlug:   make(map[string]*bookstore.Category, len(cats)),
		children: map[uuid.UUID][]*bookstore.Category{},
	}
	for _, c := range cats {
		t.byID[c.ID] = c
		t.bySlug[c.Slug] = c
		if c.ParentID == nil {
			t.Roots = append(t.Roots, c)
		} else {
			t.children[*c.ParentID] = append(t.children[*c.ParentID], c)
		}
	}
	return t
}

// ByID returns the category with id, or nil.
func (t *Tree) ByID(id uuid.UUID) *bookstore.Category { return t.byID[id] }

// BySlug returns the category with slug, or nil.
func (t *Tree) BySlug(slug string) *bookstore.Category { return t.bySlug[slug] }

// Children returns a category's direct children.
func (t *Tree) Children(id uuid.UUID) []*bookstore.Category { return t.children[id] }

// Subtree returns id and the ids of all its descendants.
func (t *Tree) Subtree(id uuid.UUID) []uuid.UUID {
	out := []uuid.UUID{id}
	for i := 0; i < len(out); i++ {
		for _, c := range t.children[out[i]] {
			out = append(out, c.ID)
		}
	}
	return out
}
