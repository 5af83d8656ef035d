package server_test

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/shopfront/bookstore/internal/testdb"
	"github.com/shopfront/bookstore/server"
)

const catPage = `query($slug: String!) { category(slug: $slug) { books(first: 5) { totalCount edges { node { title authors { name } } } } } }`

func slugs(t *testing.T, a *api) []string {
	t.Helper()
	var out struct{ Categories []struct{ Slug string } }
	a.ok(`{ categories { slug } }`, nil, &out)
	var s []string
	for _, c := range out.Categories {
		s = append(s, c.Slug)
	}
	if len(s) < 2 {
		t.Fatalf("need two categories, have %v", s)
	}
	return s
}

func TestResponseCacheServesRepeatsWithoutTheDatabase(t *testing.T) {
	a := newAPIWith(t, 50, func(c *server.Config) { c.ResponseTTL = time.Minute })
	all := slugs(t, a)
	slug := all[0]
	vars := map[string]any{"slug": slug}

	first := a.do(catPage, vars)
	before := a.queries.n.Load()
	second := a.do(catPage, vars)
	if len(first.Errors) > 0 || string(first.Data) != string(second.Data) {
		t.Fatalf("cached response differs:\n%s\n%s", first.Data, second.Data)
	}
	if n := a.queries.n.Load() - before; n != 0 {
		t.Fatalf("a repeated anonymous query ran %d SQL queries; want 0 (served from cache)", n)
	}

	t.Run("credentials bypass the cache", func(t *testing.T) {
		before := a.queries.n.Load()
		r := a.doWith(catPage, vars, http.Header{"Authorization": {"Bearer x"}})
		if len(r.Errors) > 0 || a.queries.n.Load() == before {
			t.Fatalf("a request with credentials was served from the shared cache (errors %v)", r.Errors)
		}
	})
	t.Run("other variables are another entry", func(t *testing.T) {
		before := a.queries.n.Load()
		a.do(catPage, map[string]any{"slug": all[1]})
		if a.queries.n.Load() == before {
			t.Fatal("different variables were answered from the cache")
		}
	})
	t.Run("errors are not cached", func(t *testing.T) {
		q := `{ books(first: 5) { edges { node { title } } } bad: book(id: "nope") { id } }`
		a.do(q, nil)
		before := a.queries.n.Load()
		r := a.do(q, nil)
		if len(r.Errors) == 0 || a.queries.n.Load() == before {
			t.Fatal("a response with errors was cached")
		}
	})
	t.Run("concurrent misses execute once", func(t *testing.T) {
		vars := map[string]any{"slug": slug, "n": 1} // unused variable: a fresh key
		q := `query($slug: String!, $n: Int) { category(slug: $slug) { books(first: $n) { totalCount } } }`
		before := a.queries.n.Load()
		var wg sync.WaitGroup
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if r := a.do(q, vars); len(r.Errors) > 0 {
					t.Errorf("errors: %v", r.Errors)
				}
			}()
		}
		wg.Wait()
		if n := a.queries.n.Load() - before; n > 4 {
			t.Fatalf("20 concurrent identical requests ran %d SQL queries; want one execution (<= 4)", n)
		}
	})
}

// TestResponseCacheIsSharedThroughRedis: two instances with the same real Redis: what
// one executed, the other serves without touching its database.
func TestResponseCacheIsSharedThroughRedis(t *testing.T) {
	rdb := testdb.Redis(t)
	cfg := func(c *server.Config) { c.ResponseTTL = time.Minute; c.Redis = rdb }
	a := newAPIWith(t, 30, cfg)
	b := newAPIWith(t, 30, cfg) // same deterministic catalog in its own database
	slug := slugs(t, a)[0]
	// A query text no other test uses, so the Redis entry is this test's own.
	q := catPage + " # " + t.Name() + time.Now().String()
	ra := a.do(q, map[string]any{"slug": slug})
	before := b.queries.n.Load()
	rb := b.do(q, map[string]any{"slug": slug})
	if len(ra.Errors) > 0 || string(ra.Data) != string(rb.Data) {
		t.Fatalf("instances disagree: %s vs %s (%v)", ra.Data, rb.Data, ra.Errors)
	}
	if n := b.queries.n.Load() - before; n != 0 {
		t.Fatalf("instance b ran %d SQL queries; want 0 (served from Redis)", n)
	}
}
