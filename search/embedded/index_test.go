package embedded

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore/search"
	"github.com/shopfront/bookstore/search/searchtest"
)

func openTemp(t *testing.T, opts ...Options) (*Index, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "index")
	ix, err := Open(dir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ix.Close() })
	return ix, dir
}

// TestReopen checks that a reopened index answers exactly as before it was closed.
func TestReopen(t *testing.T) {
	ctx := context.Background()
	ix, dir := openTemp(t)
	docs, err := searchtest.DemoDocuments(7, 1500)
	if err != nil {
		t.Fatal(err)
	}
	docs = append(docs, searchtest.Fixture()...)
	if err := ix.Upsert(ctx, docs); err != nil {
		t.Fatal(err)
	}
	if err := ix.Delete(ctx, []uuid.UUID{docs[0].ID, docs[1].ID}); err != nil {
		t.Fatal(err)
	}
	queries := []search.Query{
		{}, {Text: "harry poter"}, {Text: "the", Sort: search.SortNewest, Limit: 30},
		{Filter: search.Filter{Categories: []string{"fantasy", "romance"}}, Sort: search.SortPriceDesc},
		{Text: "love", Filter: search.Filter{Language: "en", MinRating: ptr(4.0)}},
	}
	var before []search.Result
	for _, q := range queries {
		before = append(before, mustSearch(t, ix, q))
	}
	sugBefore, _ := ix.Suggest(ctx, "th", 10)
	if err := ix.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if n, _ := again.Count(ctx); n != len(docs)-2 {
		t.Errorf("reopened Count = %d, want %d", n, len(docs)-2)
	}
	for i, q := range queries {
		if got := mustSearch(t, again, q); !reflect.DeepEqual(got, before[i]) {
			t.Errorf("query %+v differs after reopening:\n got %+v\nwant %+v", q, got, before[i])
		}
	}
	if s, _ := again.Suggest(ctx, "th", 10); !reflect.DeepEqual(s, sugBefore) {
		t.Errorf("suggestions differ after reopening: %v, want %v", s, sugBefore)
	}
}

func ptr[T any](v T) *T { return &v }

func mustSearch(t *testing.T, ix search.Index, q search.Query) search.Result {
	t.Helper()
	res, err := ix.Search(context.Background(), q)
	if err != nil {
		t.Fatalf("Search(%+v): %v", q, err)
	}
	return res
}

// TestSchemaChange checks that an index written with another layout is discarded.
func TestSchemaChange(t *testing.T) {
	ctx := context.Background()
	ix, dir := openTemp(t)
	if err := ix.Upsert(ctx, searchtest.Fixture()); err != nil {
		t.Fatal(err)
	}
	if err := ix.bleve.SetInternal(schemaKey, []byte("bookstore-search/0")); err != nil {
		t.Fatal(err)
	}
	ix.Close()
	again, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if n, _ := again.Count(ctx); n != 0 {
		t.Errorf("Count after a schema change = %d, want 0 (rebuilt empty)", n)
	}
	if err := again.Upsert(ctx, searchtest.Fixture()); err != nil {
		t.Fatal(err)
	}
	if res := mustSearch(t, again, search.Query{Text: "hobbit"}); res.Total != 1 {
		t.Errorf("search in the rebuilt index: %d", res.Total)
	}
}

func TestOpenPaths(t *testing.T) {
	if _, err := Open(""); err == nil {
		t.Error("Open(\"\") succeeded")
	}
	// An existing empty directory (as os.MkdirTemp makes) is fine.
	dir := t.TempDir()
	ix, err := Open(dir)
	if err != nil {
		t.Fatalf("Open(empty dir): %v", err)
	}
	ix.Close()
	// A directory holding something else is refused rather than overwritten.
	other := t.TempDir()
	os.WriteFile(filepath.Join(other, "notes.txt"), []byte("mine"), 0o644)
	if ix, err := Open(other); err == nil {
		ix.Close()
		t.Error("Open of a directory with other files succeeded")
	}
	if _, err := os.Stat(filepath.Join(other, "notes.txt")); err != nil {
		t.Errorf("other files touched: %v", err)
	}
}

func TestClosed(t *testing.T) {
	ctx := context.Background()
	ix, _ := openTemp(t)
	ix.Close()
	if err := ix.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := ix.Search(ctx, search.Query{}); !errors.Is(err, search.ErrClosed) {
		t.Errorf("Search after Close: %v", err)
	}
	if _, err := ix.Suggest(ctx, "x", 1); !errors.Is(err, search.ErrClosed) {
		t.Errorf("Suggest after Close: %v", err)
	}
	if _, err := ix.Count(ctx); !errors.Is(err, search.ErrClosed) {
		t.Errorf("Count after Close: %v", err)
	}
	if err := ix.Upsert(ctx, searchtest.Fixture()); !errors.Is(err, search.ErrClosed) {
		t.Errorf("Upsert after Close: %v", err)
	}
	if err := ix.Delete(ctx, []uuid.UUID{uuid.New()}); !errors.Is(err, search.ErrClosed) {
		t.Errorf("Delete after Close: %v", err)
	}
}

// TestCache checks that cached results never outlive a write.
func TestCache(t *testing.T) {
	ctx := context.Background()
	ix, _ := openTemp(t)
	if err := ix.Upsert(ctx, searchtest.Fixture()); err != nil {
		t.Fatal(err)
	}
	q := search.Query{Text: "hobbit"}
	first := mustSearch(t, ix, q)
	// Callers may modify what they get.
	first.Hits[0].ID = uuid.Nil
	if again := mustSearch(t, ix, q); again.Hits[0].ID != searchtest.FixtureID(searchtest.Hobbit) {
		t.Error("a caller's change reached the cache")
	}
	s1, _ := ix.Suggest(ctx, "hob", 5)
	d := searchtest.Fixture()[searchtest.Hobbit]
	d.Title = "Bilbo"
	if err := ix.Upsert(ctx, []search.Document{d}); err != nil {
		t.Fatal(err)
	}
	// Nothing but the old title said "hobbit".
	if res := mustSearch(t, ix, q); res.Total != 0 {
		t.Errorf("stale result after upsert: %+v", res)
	}
	if res := mustSearch(t, ix, search.Query{Text: "bilbo"}); res.Total != 1 || len(res.Hits[0].Highlights) == 0 || res.Hits[0].Highlights[0].Field != "title" {
		t.Errorf("new title not found: %+v", res)
	}
	if s2, _ := ix.Suggest(ctx, "hob", 5); reflect.DeepEqual(s1, s2) {
		t.Errorf("stale suggestions after upsert: %v", s2)
	}
	if err := ix.Delete(ctx, []uuid.UUID{d.ID}); err != nil {
		t.Fatal(err)
	}
	if res := mustSearch(t, ix, search.Query{Text: "bilbo"}); res.Total != 0 {
		t.Errorf("stale result after delete: %+v", res)
	}
}

// TestConcurrency runs writers, searchers and suggesters together (go test -race).
func TestConcurrency(t *testing.T) {
	ctx := context.Background()
	ix, _ := openTemp(t)
	docs, err := searchtest.DemoDocuments(3, 3000)
	if err != nil {
		t.Fatal(err)
	}
	if err := ix.Upsert(ctx, docs[:1000]); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(1500 * time.Millisecond)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	wg.Add(1)
	go func() { // writer: adds, updates and deletes in batches
		defer wg.Done()
		r := rand.New(rand.NewPCG(1, 2))
		for i := 1000; time.Now().Before(deadline); i += 50 {
			batch := slices.Clone(docs[i%3000 : min(i%3000+50, 3000)])
			for k := range batch {
				batch[k].PriceCents = int64(r.IntN(6000))
				batch[k].InStock = r.IntN(2) == 0
			}
			if err := ix.Upsert(ctx, batch); err != nil {
				errs <- err
				return
			}
			if err := ix.Delete(ctx, []uuid.UUID{docs[r.IntN(3000)].ID}); err != nil {
				errs <- err
				return
			}
		}
	}()
	texts := []string{"", "love", "the", "dragon kin", "silver", "war and", "tamsin"}
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 9))
			for time.Now().Before(deadline) {
				q := search.Query{Text: texts[r.IntN(len(texts))], Sort: search.Sort(r.IntN(6)), Offset: r.IntN(40), Limit: 1 + r.IntN(30)}
				if r.IntN(2) == 0 {
					q.Filter.Categories = []string{"fiction", "romance"}[r.IntN(2):]
					q.Filter.MaxPriceCents = ptr(int64(r.IntN(5000)))
				}
				res, err := ix.Search(ctx, q)
				if err != nil {
					errs <- err
					return
				}
				if len(res.Hits) > q.Limit || res.Total < len(res.Hits) {
					errs <- fmt.Errorf("inconsistent result for %+v: %d hits of %d", q, len(res.Hits), res.Total)
					return
				}
				if _, err := ix.Suggest(ctx, texts[r.IntN(len(texts))], 5); err != nil {
					errs <- err
					return
				}
				if _, err := ix.Count(ctx); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestFuzzy compares the vocabulary's typo walk with a brute-force edit distance.
func TestFuzzy(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	alphabet := []rune("abcdeilmnorstжшё")
	word := func(n int) string {
		b := make([]rune, n)
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		return string(b)
	}
	set := map[string]bool{}
	for len(set) < 3000 {
		set[word(1+r.IntN(9))] = true
	}
	v := &vocabulary{}
	for w := range set {
		v.terms = append(v.terms, w)
	}
	slices.Sort(v.terms)
	for range 300 {
		q := word(2 + r.IntN(8))
		for _, d := range []int{1, 2} {
			for _, prefix := range []bool{false, true} {
				got := map[string]int{}
				v.fuzzy(q, d, prefix, 0, len(v.terms), func(i, dist int, completion bool) {
					got[v.terms[i]] = dist
					full := osa(q, v.terms[i])
					if !completion && full != dist {
						t.Fatalf("fuzzy(%q, %d): %q at distance %d, want %d", q, d, v.terms[i], dist, full)
					}
				})
				for _, term := range v.terms {
					want := osa(q, term)
					if prefix && want > d {
						rs := []rune(term)
						for k := 1; k <= len(rs); k++ {
							want = min(want, osa(q, string(rs[:k])))
						}
					}
					_, ok := got[term]
					if want <= d && !ok {
						t.Fatalf("fuzzy(%q, %d, prefix %v) missed %q (distance %d)", q, d, prefix, term, want)
					}
					if want > d && ok {
						t.Fatalf("fuzzy(%q, %d, prefix %v) reported %q (distance %d)", q, d, prefix, term, want)
					}
				}
			}
		}
	}
}

// osa is a plain optimal-string-alignment distance, in letters.
func osa(as, bs string) int {
	a, b := []rune(as), []rune(bs)
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			c := 1
			if a[i-1] == b[j-1] {
				c = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+c)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// TestOptimize checks the background and explicit merges keep the index whole.
func TestOptimize(t *testing.T) {
	ctx := context.Background()
	ix, _ := openTemp(t)
	docs, _ := searchtest.DemoDocuments(5, 2500)
	for i := 0; i < len(docs); i += 250 {
		if err := ix.Upsert(ctx, docs[i:i+250]); err != nil {
			t.Fatal(err)
		}
	}
	if err := ix.Optimize(ctx); err != nil {
		t.Fatal(err)
	}
	if res := mustSearch(t, ix, search.Query{}); res.Total != 2500 {
		t.Errorf("Total after merge = %d", res.Total)
	}
	if n, err := ix.DiskSize(); err != nil || n == 0 {
		t.Errorf("DiskSize = %d, %v", n, err)
	}
	res := mustSearch(t, ix, search.Query{Text: strings.Fields(docs[42].Title)[len(strings.Fields(docs[42].Title))-1]})
	if res.Total == 0 {
		t.Errorf("no match for a title word after merge")
	}
}

// TestTermCounts checks the counts behind expansions against the live documents: a
// document written again counts once, a deleted one not at all, and the ids of terms no
// document has any more are reclaimed once they are many.
func TestTermCounts(t *testing.T) {
	ctx := context.Background()
	ix, _ := openTemp(t)
	doc := func(n int, title string) search.Document {
		return search.Document{ID: uuid.NewSHA1(uuid.NameSpaceOID, fmt.Appendf(nil, "tc-%d", n)), Title: title,
			Description: "shared words", Authors: []string{"Ann Author"}}
	}
	var gone []search.Document
	var ids []uuid.UUID
	for n := range 2000 {
		gone = append(gone, doc(n, fmt.Sprintf("Uniq%04d", n)))
		ids = append(ids, gone[n].ID)
	}
	keep := doc(9999, "Uniqueness Kept")
	for range 3 {
		if err := ix.Upsert(ctx, append(slices.Clone(gone), keep)); err != nil {
			t.Fatal(err)
		}
	}
	counts := func(term string) termInfo {
		ix.mu.RLock()
		defer ix.mu.RUnlock()
		id, ok := ix.st.termID[term]
		if !ok {
			return termInfo{}
		}
		return ix.st.termStat[id]
	}
	if c := counts("shared"); c.docs != 2001 || c.field[fieldDescription] != 2001 || c.field[fieldTitle] != 0 {
		t.Errorf("shared after three writes: %+v, want 2001 documents, in descriptions", c)
	}
	if c := counts("uniq0042"); c.docs != 1 || c.field[fieldTitle] != 1 {
		t.Errorf("uniq0042 after three writes: %+v", c)
	}
	if err := ix.Delete(ctx, ids); err != nil {
		t.Fatal(err)
	}
	if c := counts("shared"); c.docs != 1 {
		t.Errorf("shared after deletes: %+v", c)
	}
	ix.mu.RLock()
	terms, dead := len(ix.st.termStr), ix.st.deadTerms
	ix.mu.RUnlock()
	if terms > 10 || dead != 0 {
		t.Errorf("%d term ids (%d dead) after deleting 2000 titles: not reclaimed", terms, dead)
	}
	// The vocabulary follows: completions and typos of the kept title still work.
	for _, text := range []string{"uniq", "u", "uniqeness kept"} {
		res := mustSearch(t, ix, search.Query{Text: text})
		if res.Total != 1 || res.Hits[0].ID != keep.ID {
			t.Errorf("%q after compaction: %d hits", text, res.Total)
		}
	}
	if err := ix.Upsert(ctx, gone[:1]); err != nil {
		t.Fatal(err)
	}
	if res := mustSearch(t, ix, search.Query{Text: "uniq0000"}); res.Total != 1 {
		t.Errorf("a title written again after compaction: %d hits", res.Total)
	}
}
