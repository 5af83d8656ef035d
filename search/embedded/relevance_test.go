package embedded

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore/catalog"
	"github.com/shopfront/bookstore/search"
	"github.com/shopfront/bookstore/search/searchtest"
)

// The relevance set runs queries over the demo catalog catalog.Generate(1, 10000, ...)
// plus four real classics (the contract fixture's Harry Potter and Tolkien books, which
// the generator does not write) and checks where the expected books rank. Expectations
// come from what the generator writes (catalog/generate.go, demo_words.go), not from
// recorded output:
//
//   - book 3 + 41k is showcase title k, a bestseller with distinctive words: 3 "The
//     Cartographer of Lost Rivers" (Eleanor Whitlock), 44/126/331 "The Silver Crown,
//     Book 1/2/3" (Tamsin Vale), 85 "Murder at Wexley Hall", 167 "Quantum Gardens" (Priya
//     Raman), 208 "The Lighthouse Keeper's Daughter", 249 "Stars Beyond Kepler", 290 "The
//     Midnight Apothecary" (Isadora Finch), 372 "Empire of Salt and Iron", 413 "The
//     Patient Investor", 454 "The Hedgehog Who Borrowed the Moon", 495 "Neon Requiem"
//     (Kai Takeda), 536 "Summer at Juniper Cove", 577 "The Glass Archive" (Eleanor
//     Whitlock again);
//   - series volumes follow their first book: 1737-1743 are "Chronicles of Ys-Varan,
//     Book 1..7"; other sets are computed from the records (every "Inspector Hale
//     Investigates" volume, every book by the most prolific author, Karen Wallace, every
//     "Die Rückkehr ..." title);
//   - German, French and Spanish titles come from fixed word lists with accents.

// relCase is one query and what must rank where.
type relCase struct {
	query string
	// want are the books that must come first, in any order (the top len(want)); with
	// within > 0, they must all be in the top `within` instead.
	want   []search.Document
	within int
	// all, when set, must hold for every one of the top `n` hits (precision at n).
	all func(d search.Document) bool
	n   int
	why string
}

type relCorpus struct {
	ix    *Index
	docs  []search.Document // demo books by index, then the classics
	byID  map[uuid.UUID]search.Document
	extra map[int]search.Document // fixture key -> document
}

var (
	relOnce sync.Once
	relData *relCorpus
	relErr  error
)

// relevanceCorpus builds (once per test binary) the index of the demo catalog and the
// classics.
func relevanceCorpus(tb testing.TB) *relCorpus {
	relOnce.Do(func() {
		docs, err := searchtest.DemoDocuments(1, 10000)
		if err != nil {
			relErr = err
			return
		}
		c := &relCorpus{byID: map[uuid.UUID]search.Document{}, extra: map[int]search.Document{}}
		fix := searchtest.Fixture()
		for _, k := range []int{searchtest.HP1, searchtest.HP2, searchtest.Hobbit, searchtest.LOTR} {
			docs = append(docs, fix[k])
			c.extra[k] = fix[k]
		}
		c.docs = docs
		for _, d := range docs {
			c.byID[d.ID] = d
		}
		dir, err := mkdirTemp()
		if err != nil {
			relErr = err
			return
		}
		c.ix, err = Open(dir, Options{CacheSize: -1})
		if err != nil {
			relErr = err
			return
		}
		relErr = c.ix.Upsert(context.Background(), docs)
		relData = c
	})
	if relErr != nil {
		tb.Fatal(relErr)
	}
	return relData
}

func (c *relCorpus) books(idx ...int) []search.Document {
	out := make([]search.Document, len(idx))
	for i, k := range idx {
		out[i] = c.docs[k]
	}
	return out
}

func (c *relCorpus) where(f func(search.Document) bool) []search.Document {
	var out []search.Document
	for _, d := range c.docs {
		if f(d) {
			out = append(out, d)
		}
	}
	return out
}

func hasAuthor(name string) func(search.Document) bool {
	return func(d search.Document) bool { return slices.Contains(d.Authors, name) }
}

func titlePrefix(p string) func(search.Document) bool {
	return func(d search.Document) bool { return strings.HasPrefix(d.Title, p) }
}

func relevanceCases(c *relCorpus) []relCase {
	isbn3 := c.docs[3].ISBN
	dashed := isbn3[:3] + "-" + isbn3[3:4] + "-" + isbn3[4:9] + "-" + isbn3[9:12] + "-" + isbn3[12:]
	return []relCase{
		// Showcase titles, whole and partial, with and without typos.
		{query: "cartographer of lost rivers", want: c.books(3), why: "exact title"},
		{query: "cartographer", want: c.books(3), why: "title word; 'The Forgotten Cartographers' only completes it"},
		{query: "cartographr", want: c.books(3), why: "a deletion in a long word"},
		{query: "catrographer", want: c.books(3), why: "a transposition"},
		{query: "silver crown", want: c.books(44, 126, 331), why: "the three volumes"},
		{query: "the silver crown book 2", want: c.books(126), why: "the volume number"},
		{query: "murder at wexley hall", want: c.books(85), why: "exact title"},
		{query: "wexley", want: c.books(85), why: "a word found nowhere else"},
		{query: "wexly", want: c.books(85), why: "a deletion"},
		{query: "quantum gardens", want: c.books(167), why: "title"},
		{query: "quantum gard", want: c.books(167), why: "search as you type"},
		{query: "lighthouse keeper", want: c.books(208), why: "title words (keeper's: keeper + s)"},
		{query: "lighthouse keepers daughter", want: c.books(208), why: "possessive typed without apostrophe"},
		{query: "lighthuose", want: c.books(208), why: "a transposition"},
		{query: "stars beyond kepler", want: c.books(249), why: "title"},
		{query: "kepler", want: c.books(249), why: "title and hook word"},
		{query: "midnight apothecary", want: c.books(290), why: "title"},
		{query: "apothecry", want: c.books(290), why: "a deletion"},
		{query: "midnight apo", want: c.books(290), why: "search as you type"},
		{query: "empire of salt and iron", want: c.books(372), why: "title; 'Salt and Iron' titles lack 'empire'"},
		{query: "patient investor", want: c.books(413), why: "title"},
		{query: "the hedgehog who borrowed the moon", want: c.books(454), why: "exact title among 'The Hedgehog Who ...' picture books"},
		{query: "hedgehog borrowed moon", want: c.books(454), why: "title words without the small ones"},
		{query: "neon requiem", want: c.books(495), why: "title"},
		{query: "neon", want: c.books(495), why: "the only 'Neon' title"},
		{query: "juniper cove", want: c.books(536), why: "title"},
		{query: "juniper c", want: c.books(536), why: "search as you type"},
		{query: "glass archive", want: c.books(577), why: "title"},

		// Authors.
		{query: "tamsin vale", want: c.books(44, 126, 331), why: "author of the three volumes (Tamsin is also a hero's name in descriptions)"},
		{query: "tamsn vale", want: c.books(44, 126, 331), why: "a deletion in the first name"},
		{query: "eleanor whitlock", want: c.books(3, 577), why: "author of two showcase titles"},
		{query: "priya raman", want: c.books(167), why: "author (Priya is a common first name)"},
		{query: "kai takeda", want: c.books(495), why: "author"},
		{query: "isadora finch", want: c.books(290), why: "author"},
		{query: "samuel okafor", want: c.books(372), within: 3, why: "author; Okafor is also a generated surname"},
		{query: "karen wallace", all: hasAuthor("Karen Wallace"), n: 10, why: "the most prolific author (60 books)"},
		{query: "karen walace", all: hasAuthor("Karen Wallace"), n: 10, why: "a deletion in the surname"},

		// Series.
		{query: "chronicles of ys varan", want: c.books(1737, 1738, 1739, 1740, 1741, 1742, 1743), why: "every volume of the series"},
		{query: "ys-varan book 3", want: c.books(1739), why: "one volume"},
		{query: "inspector hale investigates", want: c.where(titlePrefix("Inspector Hale Investigates")), why: "every volume of both series of that name"},

		// Other languages, typed without accents.
		{query: "die ruckkehr", all: titlePrefix("Die Rückkehr"), n: 10, why: "German title start, ü typed as u"},
		{query: "el ultimo verano", all: titlePrefix("El último verano"), n: 10, why: "Spanish title start, ú typed as u"},
		{query: "der schatten des uhrmachers", want: c.where(func(d search.Document) bool { return d.Title == "Der Schatten des Uhrmachers" }), why: "German title"},

		// ISBNs.
		{query: isbn3, want: c.books(3), why: "ISBN-13"},
		{query: dashed, want: c.books(3), why: "ISBN-13 with dashes"},

		// The classics among 10,000 demo books.
		{query: "harry poter", want: []search.Document{c.extra[searchtest.HP1], c.extra[searchtest.HP2]}, why: "a typo in a title word"},
		{query: "harry potter and the chamber", want: []search.Document{c.extra[searchtest.HP2]}, why: "AND of every word"},
		{query: "tolkein", want: []search.Document{c.extra[searchtest.Hobbit], c.extra[searchtest.LOTR]}, why: "a transposition in an author name"},
		{query: "the hobit", want: []search.Document{c.extra[searchtest.Hobbit]}, why: "a deletion"},
		{query: "lord of the rings", want: []search.Document{c.extra[searchtest.LOTR]}, why: "exact title"},
	}
}

// TestRelevance checks the relevance set and reports its success rate and mean
// reciprocal rank (of each case's first expected book).
func TestRelevance(t *testing.T) {
	c := relevanceCorpus(t)
	ctx := context.Background()
	cases := relevanceCases(c)
	if len(cases[len(cases)-1].want) == 0 {
		t.Fatal("empty expectation")
	}
	passed := 0
	var mrr float64
	for _, tc := range cases {
		n := max(len(tc.want), tc.within, tc.n, 10)
		res, err := c.ix.Search(ctx, search.Query{Text: tc.query, Limit: n})
		if err != nil {
			t.Fatalf("%q: %v", tc.query, err)
		}
		rank := map[uuid.UUID]int{}
		for i, h := range res.Hits {
			rank[h.ID] = i + 1
		}
		ok := true
		var problems []string
		if len(tc.want) > 0 {
			top := len(tc.want)
			if tc.within > 0 {
				top = tc.within
			}
			best := 0
			for _, d := range tc.want {
				r := rank[d.ID]
				if r == 0 || r > top {
					ok = false
					problems = append(problems, fmt.Sprintf("%q at rank %d", d.Title, r))
				}
				if r > 0 && (best == 0 || r < best) {
					best = r
				}
			}
			if best > 0 {
				mrr += 1 / float64(best)
			}
		}
		if tc.all != nil {
			hits := res.Hits[:min(tc.n, len(res.Hits))]
			if len(hits) < tc.n {
				ok = false
				problems = append(problems, fmt.Sprintf("only %d hits", len(hits)))
			}
			for i, h := range hits {
				if !tc.all(c.byID[h.ID]) {
					ok = false
					problems = append(problems, fmt.Sprintf("hit %d is %q by %v", i+1, c.byID[h.ID].Title, c.byID[h.ID].Authors))
				}
			}
			if len(hits) > 0 && tc.all(c.byID[hits[0].ID]) {
				mrr++
			}
		}
		if ok {
			passed++
			continue
		}
		var got []string
		for _, h := range res.Hits[:min(5, len(res.Hits))] {
			got = append(got, fmt.Sprintf("%q", c.byID[h.ID].Title))
		}
		t.Errorf("%q (%s): %s; top hits %s", tc.query, tc.why, strings.Join(problems, ", "), strings.Join(got, ", "))
	}
	t.Logf("relevance: %d/%d cases pass, MRR %.3f", passed, len(cases), mrr/float64(len(cases)))
}

// TestRelevanceSuggest checks suggestions over the same corpus.
func TestRelevanceSuggest(t *testing.T) {
	c := relevanceCorpus(t)
	ctx := context.Background()
	for _, tc := range []struct {
		prefix string
		kind   search.SuggestionKind
		text   string
	}{
		{"silver cr", search.SuggestTitle, "The Silver Crown, Book 1"},
		{"the silver", search.SuggestTitle, "The Silver Crown, Book 1"},
		{"tamsin v", search.SuggestAuthor, "Tamsin Vale"},
		{"karen wal", search.SuggestAuthor, "Karen Wallace"},
		{"epic fan", search.SuggestCategory, "Epic Fantasy"},
		{"space op", search.SuggestCategory, "Space Opera"},
		{"cartographer of", search.SuggestTitle, "The Cartographer of Lost Rivers"},
		{"juniper", search.SuggestTitle, "Summer at Juniper Cove"},
		{"harry pot", search.SuggestTitle, "Harry Potter and the Philosopher's Stone"},
		{"tolk", search.SuggestAuthor, "J.R.R. Tolkien"},
	} {
		s, err := c.ix.Suggest(ctx, tc.prefix, 8)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(s, func(x search.Suggestion) bool { return x.Kind == tc.kind && x.Text == tc.text }) {
			t.Errorf("Suggest(%q) = %v, want %s %q", tc.prefix, s, tc.kind, tc.text)
		}
	}
}

// TestSuggestPopularity: among authors starting with what is typed, the best-selling
// come first, not the most prolific ("jane": Jane Austen, of one bestseller, before the
// demo catalog's many "Janet" authors of books few buy).
func TestSuggestPopularity(t *testing.T) {
	docs, err := searchtest.DemoDocuments(1, 10000)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range catalog.Classics() {
		d := searchtest.FromRecord(r)
		d.ID = uuid.NewSHA1(uuid.NameSpaceOID, []byte(r.ISBN))
		docs = append(docs, d)
	}
	ix, _ := openTemp(t)
	ctx := context.Background()
	if err := ix.Upsert(ctx, docs); err != nil {
		t.Fatal(err)
	}
	janets := 0
	for _, d := range docs {
		for _, a := range d.Authors {
			if strings.HasPrefix(a, "Janet ") {
				janets++
			}
		}
	}
	if janets < 8 {
		t.Fatalf("the demo catalog has %d books by a Janet: the case needs many", janets)
	}
	s, err := ix.Suggest(ctx, "jane", 8)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(s, func(x search.Suggestion) bool { return x.Kind == search.SuggestAuthor })
	if i < 0 || s[i].Text != "Jane Austen" {
		t.Errorf("Suggest(jane) = %v, want Jane Austen the first author", s)
	}
	// Deleting her books takes her out.
	var austen []uuid.UUID
	for _, d := range docs {
		if slices.Contains(d.Authors, "Jane Austen") {
			austen = append(austen, d.ID)
		}
	}
	if err := ix.Delete(ctx, austen); err != nil {
		t.Fatal(err)
	}
	s, _ = ix.Suggest(ctx, "jane", 8)
	if slices.ContainsFunc(s, func(x search.Suggestion) bool { return x.Text == "Jane Austen" }) {
		t.Errorf("Suggest(jane) after deleting her books = %v", s)
	}
}
