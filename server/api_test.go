package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shopfront/bookstore/auth"
	"github.com/shopfront/bookstore/catalog"
	"github.com/shopfront/bookstore/events"
	"github.com/shopfront/bookstore/internal/testdb"
	"github.com/shopfront/bookstore/loaders"
	"github.com/shopfront/bookstore/search"
	"github.com/shopfront/bookstore/search/embedded"
	"github.com/shopfront/bookstore/server"
	"github.com/shopfront/bookstore/store"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// queryCounter counts what a pool sends: n the round trips (a statement, or a pipelined
// batch of them), stmts the SQL statements (each one of a batch too).
type queryCounter struct{ n, stmts atomic.Int64 }

func (c *queryCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.n.Add(1)
	c.stmts.Add(1)
	return ctx
}
func (c *queryCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (c *queryCounter) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	c.n.Add(1)
	return ctx
}
func (c *queryCounter) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {
	c.stmts.Add(1)
}
func (c *queryCounter) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

type api struct {
	t       *testing.T
	url     string
	db      *store.DB
	queries *queryCounter
	tokens  *auth.Tokens
	index   search.Index
}

// newAPI serves the real handler over a fresh database holding a demo catalog of n books,
// with the response cache off so that every request executes.
func newAPI(t *testing.T, books int) *api {
	t.Helper()
	return newAPIWith(t, books, func(c *server.Config) { c.ResponseTTL = -1 })
}

func newAPIWith(t *testing.T, books int, configure func(*server.Config)) *api {
	t.Helper()
	qc := &queryCounter{}
	db := testdb.NewWith(t, store.Options{Tracer: qc})
	seedDemo(t, db, books)
	ix := newIndex(t, db)
	svc, tokens := newSecurity(t, db)
	cfg := server.Config{
		DB:       db,
		Identity: svc,
		Search:   ix,
		Tokens:   tokens,
		Log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		// Generous: under the race detector goroutines start slowly, and a split batch
		// would make the round-trip assertions flaky rather than wrong.
		Loaders:       loaders.Options{Wait: 20 * time.Millisecond},
		GraphiQL:      true,
		Introspection: true,
	}
	configure(&cfg)
	srv := httptest.NewServer(server.New(cfg))
	t.Cleanup(srv.Close)
	return &api{t: t, url: srv.URL, db: db, queries: qc, tokens: tokens, index: ix}
}

// newIndex opens an embedded search index holding db's catalog and retires the outbox
// events the seeding wrote (the index already reflects them).
func newIndex(t *testing.T, db *store.DB) search.Index {
	t.Helper()
	ix, err := embedded.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ix.Close() })
	relay := &events.Relay{Outbox: db.Outbox, Handlers: []events.Handler{&events.SearchIndexer{DB: db, Index: ix}}}
	if err := relay.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	return ix
}

func seedDemo(t *testing.T, db *store.DB, n int) {
	t.Helper()
	ctx := context.Background()
	b := db.NewBatcher(500)
	b.OnFailed = func(f *store.LoadError) { t.Errorf("demo record refused: %v", f) }
	if err := catalog.Generate(1, n, func(r catalog.Record) error { return b.Add(ctx, r) }); err != nil {
		t.Fatal(err)
	}
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

type gqlError struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path"`
	Extensions map[string]any `json:"extensions"`
}

type gqlResponse struct {
	Data   json.RawMessage `json:"data"`
	Errors []gqlError      `json:"errors"`
	status int
}

func (a *api) do(query string, vars map[string]any) gqlResponse {
	a.t.Helper()
	return a.doWith(query, vars, nil)
}

func (a *api) doWith(query string, vars map[string]any, hdr http.Header) gqlResponse {
	a.t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, a.url+"/graphql", bytes.NewReader(body))
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/graphql-response+json, application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out gqlResponse
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &out); err != nil {
		a.t.Fatalf("response is not JSON (%d): %s", resp.StatusCode, raw)
	}
	out.status = resp.StatusCode
	return out
}

// ok runs a query that must succeed and decodes its data into v.
func (a *api) ok(query string, vars map[string]any, v any) {
	a.t.Helper()
	r := a.do(query, vars)
	if len(r.Errors) > 0 {
		a.t.Fatalf("errors: %+v", r.Errors)
	}
	if err := json.Unmarshal(r.Data, v); err != nil {
		a.t.Fatalf("decode %s: %v", r.Data, err)
	}
}

const pageQuery = `query($first: Int!) {
  books(first: $first, sort: BESTSELLING) {
    totalCount
    edges { cursor node {
      id title priceCents
      authors { id name }
      categories { slug parent { slug } }
      availability { inStock quantity status }
      reviews(first: 3) { totalCount edges { node { rating title } } }
    } }
  }
}`

// newBatchingAPI is newAPI for the round-trip guards: its loaders wait long enough that
// a loaded machine (the race detector on two busy cores) cannot split a batch by delaying
// one resolver goroutine past the wait, which would count an extra round trip by chance.
func newBatchingAPI(t *testing.T, books int) *api {
	t.Helper()
	return newAPIWith(t, books, func(c *server.Config) {
		c.ResponseTTL = -1
		c.Loaders = loaders.Options{Wait: 250 * time.Millisecond}
	})
}

// TestRoundTripsDoNotGrowWithPageSize is the N+1 guard: a page of 50 books with their
// authors, categories, availability and first reviews takes as many SQL round trips as
// a page of 5.
func TestRoundTripsDoNotGrowWithPageSize(t *testing.T) {
	a := newBatchingAPI(t, 120)
	trips := func(first int) int64 {
		var out struct {
			Books struct {
				Edges []struct {
					Node struct {
						Authors []struct{ Name string }
						Reviews struct{ TotalCount int }
					}
				}
			}
		}
		before := a.queries.n.Load()
		a.ok(pageQuery, map[string]any{"first": first}, &out)
		if len(out.Books.Edges) != first {
			t.Fatalf("got %d books, want %d", len(out.Books.Edges), first)
		}
		reviewed := 0
		for _, e := range out.Books.Edges {
			if len(e.Node.Authors) == 0 {
				t.Fatal("a book without authors: the loader lost a key")
			}
			if e.Node.Reviews.TotalCount > 0 {
				reviewed++
			}
		}
		if first >= 50 && reviewed == 0 {
			t.Fatal("no book in the page has reviews; the test would not exercise the reviews loader")
		}
		return a.queries.n.Load() - before
	}
	// The first request also fills the shared category-tree and count caches; measure
	// after it so both page sizes see the same warm caches. A loader batch can be split in
	// two when the race detector delays a goroutine past the loader's wait, adding one
	// round trip by chance; the fewest of a few runs is the request's real cost (an N+1
	// query would add dozens on every run).
	trips(5)
	fewest := func(first int) int64 {
		n := trips(first)
		for range 2 {
			n = min(n, trips(first))
		}
		return n
	}
	small, large := fewest(5), fewest(50)
	if small != large {
		t.Fatalf("round trips: %d for 5 books, %d for 50", small, large)
	}
	// books, count, authors, categories (ids + tree), stock, reviews.
	if small > 7 {
		t.Fatalf("%d round trips for one page; expected one per kind of data (about 7)", small)
	}
	t.Logf("%d round trips per page, for 5 and for 50 books", small)
}

// TestNestedListsAreBatched: every category's first books (a list under a list) in one
// query per level, however many categories there are.
func TestNestedListsAreBatched(t *testing.T) {
	a := newBatchingAPI(t, 200)
	before := a.queries.n.Load()
	var out struct {
		Categories []struct {
			Slug  string
			Books struct {
				TotalCount int
				Edges      []struct{ Node struct{ Title string } }
			}
			Children []struct {
				Slug  string
				Books struct{ TotalCount int }
			}
		}
	}
	a.ok(`{ categories { slug books(first: 3) { totalCount edges { node { title } } }
		children { slug books(first: 2) { totalCount } } } }`, nil, &out)
	trips := a.queries.n.Load() - before
	if len(out.Categories) < 5 {
		t.Fatalf("only %d top-level categories", len(out.Categories))
	}
	for _, c := range out.Categories {
		// A category lists its subcategories' books too.
		for _, ch := range c.Children {
			if c.Books.TotalCount < ch.Books.TotalCount {
				t.Fatalf("category %s has %d books, fewer than its child %s (%d)", c.Slug, c.Books.TotalCount, ch.Slug, ch.Books.TotalCount)
			}
		}
		if c.Books.TotalCount == 0 || len(c.Books.Edges) != min(3, c.Books.TotalCount) {
			t.Fatalf("category %s: total %d, %d edges", c.Slug, c.Books.TotalCount, len(c.Books.Edges))
		}
	}
	if trips > 4 {
		t.Fatalf("%d round trips for two levels of category lists; want <= 4 (tree + one per level)", trips)
	}
}

func TestHealthAndReadiness(t *testing.T) {
	a := newAPI(t, 0)
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(a.url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s = %d", path, resp.StatusCode)
		}
	}
	a.db.Close() // a database the server cannot reach makes it unready, not dead
	// The answer is cached for a second (readyz is public: it must not cost a ping and a
	// migration read per call): the closed database shows once the cache expires.
	resp, err := http.Get(a.url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/readyz within its cache second = %d, want the cached 200", resp.StatusCode)
	}
	time.Sleep(1100 * time.Millisecond)
	resp, err = http.Get(a.url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with the database closed = %d, want 503", resp.StatusCode)
	}
}

func TestGraphiQLIsServedFromTheBinary(t *testing.T) {
	a := newAPI(t, 0)
	resp, err := http.Get(a.url + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "graphiql") {
		t.Fatalf("GET / = %d: %.200s", resp.StatusCode, body)
	}
	if strings.Contains(string(body), "cdn") || strings.Contains(string(body), "unpkg") {
		t.Fatal("the GraphiQL page loads assets from a CDN")
	}
}

// TestNestedPagesUnderCategoriesArePricedPerCategory: a page of books under every genre
// costs one page per genre, so a large one is refused before it runs, while the small
// one a storefront menu asks for is served.
func TestNestedPagesUnderCategoriesArePricedPerCategory(t *testing.T) {
	a := newAPI(t, 20)
	big := `{ categories { books(first: 100) { edges { node { title authors { name } availability { status } } } } } }`
	if r := a.do(big, nil); code(r) != "COMPLEXITY_LIMIT_EXCEEDED" {
		t.Fatalf("100 books with authors under every genre: %+v", r.Errors)
	}
	var out struct {
		Categories []struct{ Books struct{ TotalCount int } }
	}
	a.ok(`{ categories { books(first: 5) { totalCount edges { node { title } } } } }`, nil, &out)
	if len(out.Categories) == 0 {
		t.Fatal("no categories")
	}
}
