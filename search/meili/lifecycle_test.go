package meili

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/meilisearch/meilisearch-go"

	"github.com/shopfront/bookstore/search"
	"github.com/shopfront/bookstore/search/meili/meilitest"
	"github.com/shopfront/bookstore/search/searchtest"
)

// recorder is a proxy in front of a fake that keeps the request bodies by path.
type recorder struct {
	mu     sync.Mutex
	bodies map[string][]string
}

func (r *recorder) get(path string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.bodies[path]...)
}

func newRecorder(t *testing.T, opts ...meilitest.Option) (*recorder, string) {
	fake := meilitest.NewServer(fakeKey, opts...)
	t.Cleanup(fake.Close)
	u, _ := url.Parse(fake.URL)
	rp := httputil.NewSingleHostReverseProxy(u)
	rec := &recorder{bodies: map[string][]string{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rec.mu.Lock()
		rec.bodies[r.URL.Path] = append(rec.bodies[r.URL.Path], string(b))
		rec.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(b))
		r.ContentLength = int64(len(b))
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return rec, srv.URL
}

// TestRebuildSwapOnEveryVersion: the swap request carries only "indexes", so Rebuild
// works on Meilisearch before 1.18 (which refuses "rename" as an unknown field) and on
// 1.18+; in both the rebuilt documents are served afterwards.
func TestRebuildSwapOnEveryVersion(t *testing.T) {
	for _, v := range []struct {
		name string
		opts []meilitest.Option
	}{{"before 1.18", nil}, {"1.18+", []meilitest.Option{meilitest.WithSwapRename()}}} {
		t.Run(v.name, func(t *testing.T) {
			ctx := context.Background()
			rec, u := newRecorder(t, v.opts...)
			ix, err := Open(ctx, Config{URL: u, Key: fakeKey, Index: randomUID()})
			if err != nil {
				t.Fatal(err)
			}
			if err := ix.Upsert(ctx, []search.Document{{ID: uuid.New(), Title: "Ghost"}}); err != nil {
				t.Fatal(err)
			}
			err = ix.Rebuild(ctx, search.Meta{CatalogID: uuid.New()}, func(w search.Writer) error {
				return w.Upsert(ctx, searchtest.Fixture())
			})
			if err != nil {
				t.Fatalf("rebuild: %v (swap bodies %v)", err, rec.get("/swap-indexes"))
			}
			for _, b := range rec.get("/swap-indexes") {
				if strings.Contains(b, "rename") {
					t.Errorf("swap body %s carries rename", b)
				}
			}
			if n, _ := ix.Count(ctx); n != len(searchtest.Fixture()) {
				t.Errorf("count after rebuild %d, want %d", n, len(searchtest.Fixture()))
			}
		})
	}
}

// TestSuggestSendsQueryText: the author and title searches behind Suggest send
// queryText(prefix), not the raw prefix (quotes and a leading "-" are Meilisearch
// phrase and negation syntax).
func TestSuggestSendsQueryText(t *testing.T) {
	ctx := context.Background()
	rec, u := newRecorder(t)
	uid := randomUID()
	ix, err := Open(ctx, Config{URL: u, Key: fakeKey, Index: uid})
	if err != nil {
		t.Fatal(err)
	}
	if err := ix.Upsert(ctx, searchtest.Fixture()); err != nil {
		t.Fatal(err)
	}
	const prefix = `-"tolk`
	if _, err := ix.Suggest(ctx, prefix, 10); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, b := range rec.get("/indexes/" + uid + "/search") {
		var req struct {
			Q  string   `json:"q"`
			On []string `json:"attributesToSearchOn"`
		}
		if err := json.Unmarshal([]byte(b), &req); err != nil {
			t.Fatal(err)
		}
		if req.Q == "" && len(req.On) == 0 {
			continue // the sales of the matched authors: filtered by id, no text
		}
		n++
		if req.Q != queryText(prefix) {
			t.Errorf("suggest sent q=%q, want %q", req.Q, queryText(prefix))
		}
	}
	if n == 0 {
		t.Fatal("no search request recorded")
	}
}

// TestRebuildLeftoversSwept: a rebuild that dies mid-fill (a killed process, emulated by
// a panic that skips its clean-up) leaves <uid>_rebuild_* indexes; the next Open
// removes them, and so does the next Rebuild.
func TestRebuildLeftoversSwept(t *testing.T) {
	ctx := context.Background()
	url, key, _ := server(t)
	uid := randomUID()
	ix, err := Open(ctx, Config{URL: url, Key: key, Index: uid})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ix.DeleteIndex(context.Background()) })
	die := func() {
		defer func() { recover() }()
		ix.Rebuild(ctx, search.Meta{CatalogID: uuid.New()}, func(w search.Writer) error {
			if err := w.Upsert(ctx, searchtest.Fixture()); err != nil {
				return err
			}
			panic("killed")
		})
	}
	leftovers := func() []string {
		t.Helper()
		var out []string
		for offset := int64(0); ; {
			res, err := ix.client.ListIndexesWithContext(ctx, &meilisearch.IndexesQuery{Offset: offset, Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range res.Results {
				if strings.HasPrefix(r.UID, uid+"_") && strings.Contains(r.UID, rebuildInfix) {
					out = append(out, r.UID)
				}
			}
			offset += int64(len(res.Results))
			if len(res.Results) == 0 || offset >= res.Total {
				return out
			}
		}
	}
	die()
	if l := leftovers(); len(l) == 0 {
		t.Fatal("the killed rebuild left nothing: the test proves nothing")
	}
	if ix, err = Open(ctx, Config{URL: url, Key: key, Index: uid}); err != nil {
		t.Fatal(err)
	}
	if l := leftovers(); len(l) != 0 {
		t.Errorf("after Open: leftover indexes %v", l)
	}
	die()
	if err := ix.Rebuild(ctx, search.Meta{CatalogID: uuid.New()}, func(w search.Writer) error {
		return w.Upsert(ctx, searchtest.Fixture())
	}); err != nil {
		t.Fatal(err)
	}
	if l := leftovers(); len(l) != 0 {
		t.Errorf("after Rebuild: leftover indexes %v", l)
	}
}
