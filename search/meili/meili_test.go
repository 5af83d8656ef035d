// The tests of the Meilisearch adapter run against a real Meilisearch when MEILI_URL is
// set (with MEILI_KEY as its API key, if it has one):
//
//	MEILI_URL=http://127.0.0.1:7700 MEILI_KEY=masterKey go test ./search/meili/
//
// Each test then works in its own index ("bookstore_test_<random>"), deleted at the end.
// Without MEILI_URL they run against meilitest, an in-memory fake of Meilisearch's HTTP
// API that rejects requests of the wrong shape. The same suite (searchtest.Run) checks
// the embedded engine, so both engines keep the same contract. Tests that inspect the
// requests themselves (which endpoints a search uses) run against the fake only.
package meili

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore/search"
	"github.com/shopfront/bookstore/search/meili/meilitest"
	"github.com/shopfront/bookstore/search/searchtest"
)

const fakeKey = "test-master-key"

// server returns the URL and key of the Meilisearch to test against, and the fake when
// that is what it is.
func server(t *testing.T) (url, key string, fake *meilitest.Server) {
	t.Helper()
	if url := os.Getenv("MEILI_URL"); url != "" {
		return url, os.Getenv("MEILI_KEY"), nil
	}
	fake = meilitest.NewServer(fakeKey)
	t.Cleanup(fake.Close)
	return fake.URL, fakeKey, fake
}

func randomUID() string {
	b := make([]byte, 6)
	rand.Read(b)
	return "bookstore_test_" + hex.EncodeToString(b)
}

// open opens an adapter on a new, empty index.
func open(t *testing.T) (*Index, *meilitest.Server) {
	t.Helper()
	url, key, fake := server(t)
	ix, err := Open(context.Background(), Config{URL: url, Key: key, Index: randomUID()})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := ix.DeleteIndex(context.Background()); err != nil {
			t.Logf("delete test index: %v", err)
		}
	})
	return ix, fake
}

func TestContract(t *testing.T) {
	searchtest.Run(t, func(t *testing.T) search.Index {
		ix, _ := open(t)
		return ix
	})
}

func TestOpenExistingIndex(t *testing.T) {
	url, key, _ := server(t)
	ctx := context.Background()
	uid := randomUID()
	ix, err := Open(ctx, Config{URL: url, Key: key, Index: uid})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.DeleteIndex(ctx)
	if err := ix.Upsert(ctx, searchtest.Fixture()); err != nil {
		t.Fatal(err)
	}
	// Opening again keeps the documents (index_already_exists is not an error).
	again, err := Open(ctx, Config{URL: url, Key: key, Index: uid})
	if err != nil {
		t.Fatalf("second Open: %v", err)
	}
	if n, err := again.Count(ctx); err != nil || n != searchtest.NumFixture {
		t.Errorf("Count after reopening = %d, %v", n, err)
	}
}

func TestAuthentication(t *testing.T) {
	url, key, _ := server(t)
	if key == "" {
		t.Skip("the server has no API key")
	}
	ctx := context.Background()
	_, err := Open(ctx, Config{URL: url, Key: "wrong-" + key, Index: randomUID()})
	if err == nil || !strings.Contains(err.Error(), "invalid_api_key") {
		t.Errorf("Open with a wrong key: %v", err)
	}
	_, err = Open(ctx, Config{URL: url, Index: randomUID()})
	if err == nil || !strings.Contains(err.Error(), "missing_authorization_header") {
		t.Errorf("Open without a key: %v", err)
	}
}

// TestRequests checks which endpoints searches use (fake only).
func TestRequests(t *testing.T) {
	ix, fake := open(t)
	if fake == nil {
		t.Skip("inspects the requests of the fake")
	}
	ctx := context.Background()
	if err := ix.Upsert(ctx, searchtest.Fixture()); err != nil {
		t.Fatal(err)
	}
	tru := true
	for _, tc := range []struct {
		name          string
		q             search.Query
		search, multi int
	}{
		{"no filter: one search", search.Query{Text: "harry"}, 1, 0},
		{"filters: one multi-search", search.Query{Text: "harry", Filter: search.Filter{Categories: []string{"fantasy"}, InStock: &tru}}, 0, 1},
		{"filters without facets: one search", search.Query{Filter: search.Filter{Categories: []string{"fantasy"}}, SkipFacets: true}, 1, 0},
	} {
		fake.ResetCalls()
		if _, err := ix.Search(ctx, tc.q); err != nil {
			t.Fatal(err)
		}
		if s, m := fake.Calls("POST /indexes/:uid/search"), fake.Calls("POST /multi-search"); s != tc.search || m != tc.multi {
			t.Errorf("%s: %d searches and %d multi-searches, want %d and %d", tc.name, s, m, tc.search, tc.multi)
		}
	}
}

// TestUnwaitedWritesAreInvisible shows the fake enforces Meilisearch's asynchronous
// writes: a document added without waiting for its task is not searchable yet, so the
// adapter's waiting is what makes the contract suite pass.
func TestUnwaitedWritesAreInvisible(t *testing.T) {
	ix, fake := open(t)
	if fake == nil {
		t.Skip("relies on the fake's task timing")
	}
	ctx := context.Background()
	d := toMeili(&searchtest.Fixture()[searchtest.HP1])
	if _, err := ix.index.AddDocumentsWithContext(ctx, []meiliDoc{d}, nil); err != nil {
		t.Fatal(err)
	}
	if n, _ := ix.Count(ctx); n != 0 {
		t.Errorf("Count before the task was processed = %d, want 0", n)
	}
	if err := ix.Upsert(ctx, searchtest.Fixture()[:1]); err != nil {
		t.Fatal(err)
	}
	if n, _ := ix.Count(ctx); n != 1 {
		t.Errorf("Count after Upsert = %d, want 1", n)
	}
}

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{
		`fantasy`:                     `"fantasy"`,
		`Fantasy" OR price_cents > 0`: `"Fantasy\" OR price_cents > 0"`,
		`'; DROP`:                     `"'; DROP"`,
		`a\b`:                         `"a\\b"`,
		`\"`:                          `"\\\""`,
		`x\`:                          `"x\\"`,
		``:                            `""`,
	} {
		if got := quote(in); got != want {
			t.Errorf("quote(%q) = %s, want %s", in, got, want)
		}
	}
	min, max, r, stock := int64(100), int64(2000), 4.5, false
	g := filterGroups(&search.Filter{
		Categories: []string{"fantasy", `x" OR 1=1`}, AuthorIDs: []uuid.UUID{uuid.Nil},
		MinPriceCents: &min, MaxPriceCents: &max, MinRating: &r, InStock: &stock, Language: `en"`,
	})
	want := `(categories IN ["fantasy", "x\" OR 1=1"]) AND (author_ids IN ["00000000-0000-0000-0000-000000000000"]) AND ` +
		`(price_cents >= 100 AND price_cents <= 2000) AND (rating >= 4.5) AND (in_stock = false) AND (language = "en\"")`
	if got := joinFilter(g, -1); got != want {
		t.Errorf("filter =\n%s\nwant\n%s", got, want)
	}
	if got := joinFilter(g, groupGenre); strings.Contains(got, "categories") {
		t.Errorf("filter without genres = %s", got)
	}
}

func TestPageOf(t *testing.T) {
	for _, tc := range []struct{ offset, limit int }{
		{0, 20}, {20, 20}, {40, 20}, {3, 4}, {5, 3}, {13, 7}, {99, 10}, {1, 100}, {9999, 20}, {0, 1}, {7, 1},
	} {
		page, size, skip := pageOf(tc.offset, tc.limit)
		from := (page-1)*size + skip
		if from != tc.offset || skip+tc.limit > size || page < 1 {
			t.Errorf("pageOf(%d, %d) = page %d size %d skip %d", tc.offset, tc.limit, page, size, skip)
		}
	}
}

func TestInvalidConfig(t *testing.T) {
	if _, err := Open(context.Background(), Config{}); err == nil {
		t.Error("Open without URL succeeded")
	}
	var te *taskError
	if errors.As(errors.New("x"), &te) {
		t.Error("errors.As matched a plain error")
	}
}

// TestQueryText: what reaches Meilisearch is words only, with the trailing space that
// ends the last word kept.
func TestQueryText(t *testing.T) {
	for in, want := range map[string]string{
		"hobb":                  "hobb",
		"hobb ":                 "hobb ",
		"  the hobb   ":         "the hobb ",
		`"brief history"`:       "brief history ",
		`history "brief`:        "history brief",
		"-harry potter":         "harry potter",
		"harry -potter":         "harry potter",
		"Saint-Exupéry":         "Saint Exupéry",
		"ＨＯＢＢＩＴ":                "HOBBIT",
		"   ":                   "",
		`" - "`:                 "",
		"philosopher's stone.":  "philosopher s stone ",
		"tolkien\u00a0":         "tolkien ",
		"a\u3000b":              "a b",
		"x" + string(rune(0xb)): "x ",
	} {
		if got := queryText(in); got != want {
			t.Errorf("queryText(%q) = %q, want %q", in, got, want)
		}
	}
}
