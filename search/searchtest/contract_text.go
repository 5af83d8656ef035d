package searchtest

import (
	"context"
	"fmt"
	"html"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore/search"
	"github.com/shopfront/bookstore/search/internal/words"
)

// hasWord reports whether text has the (normalised) word w.
func hasWord(text, w string) bool {
	found := false
	words.Tokenize(text, func(term []byte, _, _ int) {
		if string(term) == w {
			found = true
		}
	})
	return found
}

// snippetText returns the pieces of plain text a snippet shows: marks removed, entities
// decoded, split at crop markers.
func snippetText(snippet string) []string {
	s := strings.NewReplacer(search.MarkStart, "", search.MarkEnd, "").Replace(snippet)
	s = html.UnescapeString(s)
	var out []string
	for _, p := range strings.Split(s, search.Ellipsis) {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// docField returns the text of a highlighted field of d, as engines show it.
func docField(d *search.Document, field string) (string, bool) {
	switch field {
	case "title":
		return d.Title, true
	case "authors":
		return strings.Join(d.Authors, ", "), true
	case "description":
		return d.Description, true
	}
	return "", false
}

// checkSnippets reports the highlights of res that are not text of their own book in
// any of its versions (versions[k] are the documents book k has had).
func checkSnippets(res search.Result, versions func(k int) []search.Document) []string {
	var bad []string
	for _, h := range res.Hits {
		k, ok := keyOf[h.ID]
		if !ok {
			bad = append(bad, fmt.Sprintf("hit %s is no fixture book", h.ID))
			continue
		}
		for _, hl := range h.Highlights {
			if !strings.Contains(hl.Snippet, search.MarkStart) {
				bad = append(bad, fmt.Sprintf("%s: %s highlight %q marks nothing", fixtureNames[k], hl.Field, hl.Snippet))
			}
			ok := false
			for _, d := range versions(k) {
				text, known := docField(&d, hl.Field)
				if !known {
					break
				}
				all := true
				for _, p := range snippetText(hl.Snippet) {
					all = all && strings.Contains(text, p)
				}
				if all {
					ok = true
					break
				}
			}
			if !ok {
				bad = append(bad, fmt.Sprintf("%s: %s highlight %q is not its own text", fixtureNames[k], hl.Field, hl.Snippet))
			}
		}
	}
	return bad
}

// updatedDescriptions are description texts the updates give books in turn: every
// variant keeps a word of the fixture's query words, moved around.
var updatedDescriptions = []string{
	"Revised edition: a journey through space with a planet on every page.",
	"A detective story of the magic kind, told on a train through the snow.",
	"Second printing. The reeds by the lake hide a dragon and its gold.",
}

// testHighlightsAfterUpdates updates books many times (price, stock, then text), one
// book per batch so that the engine's storage keeps old versions around, while searches
// run; every highlight must show its own book's text, and a book whose description has
// the query word, not shown by its title or authors, must show its description.
func testHighlightsAfterUpdates(t *testing.T, ix search.Index) {
	ctx := context.Background()
	queries := []string{"poirot", "space", "magic", "reeds", "planet", "dragon", "school magic", "train snow", "gold"}

	var mu sync.Mutex
	versions := map[int][]search.Document{}
	current := map[int]search.Document{}
	for k, d := range Fixture() {
		versions[k] = []search.Document{d}
		current[k] = d
	}
	versionsOf := func(k int) []search.Document {
		mu.Lock()
		defer mu.Unlock()
		return append([]search.Document(nil), versions[k]...)
	}

	var stop atomic.Bool
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; !stop.Load(); i++ {
				res, err := ix.Search(ctx, search.Query{Text: queries[i%len(queries)], SkipFacets: true})
				if err != nil {
					t.Errorf("search %q while updating: %v", queries[i%len(queries)], err)
					return
				}
				// A document's text may change while the search runs: any of its
				// versions will do, never another book's.
				if bad := checkSnippets(res, versionsOf); len(bad) > 0 {
					t.Errorf("%q while updating: %s", queries[i%len(queries)], strings.Join(bad, "; "))
					return
				}
			}
		}()
	}

	check := func(round string) {
		t.Helper()
		cur := func(k int) []search.Document {
			mu.Lock()
			defer mu.Unlock()
			return []search.Document{current[k]}
		}
		for _, q := range queries {
			res := mustSearch(t, ix, search.Query{Text: q, Limit: NumFixture})
			for _, b := range checkSnippets(res, cur) {
				t.Errorf("%s, %q: %s", round, q, b)
			}
			qw := strings.Fields(words.Normalize(q))
			for _, h := range res.Hits {
				k := keyOf[h.ID]
				d := cur(k)[0]
				// Title and authors may show a word by one of its typos: only a hit they
				// show nothing of must show its description.
				if len(h.Highlights) > 0 {
					continue
				}
				for _, w := range qw {
					if hasWord(d.Description, w) {
						t.Errorf("%s, %q: %s has %q in its description only, highlights %v", round, q, fixtureNames[k], w, h.Highlights)
					}
				}
			}
		}
	}
	check("before updates")
	upsert := func(k int, change func(d *search.Document)) {
		mu.Lock()
		d := current[k]
		change(&d)
		versions[k] = append(versions[k], d)
		current[k] = d
		mu.Unlock()
		if err := ix.Upsert(ctx, []search.Document{d}); err != nil {
			t.Fatal(err)
		}
	}
	for round := range 4 {
		for k := range NumFixture {
			upsert(k, func(d *search.Document) { d.PriceCents += 100 })
		}
		for k := NumFixture - 1; k >= 0; k-- {
			upsert(k, func(d *search.Document) { d.InStock = !d.InStock })
		}
		check(fmt.Sprintf("round %d, prices and stock", round))
		for k := round; k < NumFixture; k += 3 {
			upsert(k, func(d *search.Document) { d.Description = updatedDescriptions[(k+round)%len(updatedDescriptions)] })
		}
		check(fmt.Sprintf("round %d, descriptions", round))
	}
	stop.Store(true)
	wg.Wait()
	// Back to the fixture's own texts, in one batch.
	docs := Fixture()
	if err := ix.Upsert(ctx, docs); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	for k, d := range docs {
		current[k] = d
	}
	mu.Unlock()
	check("restored")
}

// extraDoc is a book outside the fixture, in no category the fixture checks.
func extraDoc(n int, title, desc string, authors ...string) search.Document {
	return search.Document{
		ID: uuid.NewSHA1(uuid.NameSpaceOID, fmt.Appendf(nil, "extra-%d", n)), Title: title,
		Description: desc, Authors: authors, PriceCents: 1000, Language: "en", InStock: true,
	}
}

// hasHit reports whether res has a hit with id.
func hasHit(res search.Result, id uuid.UUID) bool {
	for _, h := range res.Hits {
		if h.ID == id {
			return true
		}
	}
	return false
}

// testShortPrefixes: a word being typed finds the title it starts, however many
// descriptions use other words with the same start.
func testShortPrefixes(t *testing.T, ix search.Index) {
	ctx := context.Background()
	var docs []search.Document
	for n := range 200 {
		docs = append(docs, extraDoc(n, fmt.Sprintf("Volume %d", n),
			"A collection of common comments, concise and colourful, composed on the coast of a continent by a council of cooks.",
			"Anon Writer"))
	}
	if err := ix.Upsert(ctx, docs); err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{"c", "co", "cos", "cosm"} {
		res := mustSearch(t, ix, search.Query{Text: text, Limit: search.MaxLimit, SkipFacets: true})
		if !hasHit(res, FixtureID(Cosmos)) {
			t.Errorf("%q: Cosmos missing from %d hits", text, res.Total)
		}
	}
}

// testCountsFollowWrites: what was deleted or written again does not crowd a live title
// out of the completions of a short prefix.
func testCountsFollowWrites(t *testing.T, ix search.Index) {
	ctx := context.Background()
	fly := extraDoc(1000, "Dragonfly", "An insect's year by the pond.", "Mia Pond")
	if err := ix.Upsert(ctx, []search.Document{fly, extraDoc(1001, "Dragonfly Summer", "", "Lu Pond"), extraDoc(1002, "The Dragonfly Pond", "", "Lu Pond")}); err != nil {
		t.Fatal(err)
	}
	// 30 titles written four times, then deleted.
	var gone []search.Document
	var ids []uuid.UUID
	for n := range 30 {
		gone = append(gone, extraDoc(n, fmt.Sprintf("Dra%02d", n), "", "Anon Writer"))
		ids = append(ids, gone[n].ID)
	}
	for range 4 {
		if err := ix.Upsert(ctx, gone); err != nil {
			t.Fatal(err)
		}
	}
	if err := ix.Delete(ctx, ids); err != nil {
		t.Fatal(err)
	}
	// 24 live titles of two books each, written ten times (as stock changes do): they
	// are in fewer books than "dragonfly".
	var live []search.Document
	for n := range 24 {
		for c := range 2 {
			live = append(live, extraDoc(2000+2*n+c, fmt.Sprintf("Drab%c Tales", 'a'+n), "", "Anon Writer"))
		}
	}
	for range 10 {
		if err := ix.Upsert(ctx, live); err != nil {
			t.Fatal(err)
		}
	}
	for _, text := range []string{"d", "dr", "dra", "drag"} {
		res := mustSearch(t, ix, search.Query{Text: text, Limit: search.MaxLimit, SkipFacets: true})
		if !hasHit(res, fly.ID) {
			t.Errorf("%q: Dragonfly missing from %d hits", text, res.Total)
		}
	}
	if res := mustSearch(t, ix, search.Query{Text: "dra07"}); res.Total != 0 {
		t.Errorf("deleted title found: %d hits", res.Total)
	}
}

// testTyposInLetters: typos count letters, whatever the script.
func testTyposInLetters(t *testing.T, ix search.Index) {
	ctx := context.Background()
	war := extraDoc(3000, "Война и мир", "Роман-эпопея о войне 1812 года.", "Лев Толстой")
	crime := extraDoc(3001, "Преступление и наказание", "Роман о студенте Раскольникове.", "Фёдор Достоевский")
	if err := ix.Upsert(ctx, []search.Document{war, crime}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		text string
		want uuid.UUID
	}{
		{"Толстой", war.ID},
		{"Толсой", war.ID},            // a letter left out
		{"Толстоя", war.ID},           // a letter changed
		{"Тлостой", war.ID},           // two letters swapped
		{"толстой мир", war.ID},       // with another word
		{"Достоевский", crime.ID},     // exact
		{"Достоеский", crime.ID},      // one typo
		{"Дотсоеский", crime.ID},      // two typos
		{"оДстоевкий", crime.ID},      // the first two letters swapped, and a typo
		{"Фёдор", crime.ID},           // accent folded
		{"федор достоевск", crime.ID}, // as you type
		{"Пресупление", crime.ID},     // a long word
	} {
		res := mustSearch(t, ix, search.Query{Text: tc.text, SkipFacets: true})
		if !hasHit(res, tc.want) || res.Total != 1 {
			t.Errorf("%q: %d hits, want the one book", tc.text, res.Total)
		}
	}
	for _, text := range []string{"Тосй", "Дсоеский"} { // too many typos
		if res := mustSearch(t, ix, search.Query{Text: text + " ", SkipFacets: true}); res.Total != 0 {
			t.Errorf("%q: %d hits, want none", text, res.Total)
		}
	}
}

// testQuerySyntax: the text is words, whatever punctuation it has; a trailing space ends
// the last word; compatibility forms (full-width letters) are the letters.
func testQuerySyntax(t *testing.T, ix search.Index) {
	for _, tc := range []struct {
		text string
		want []int
	}{
		{"hobb", []int{Hobbit}},                    // a prefix
		{"hobb ", nil},                             // a complete word: no book has it
		{"the hobb  ", nil},                        // ... after another word
		{"hobbit ", []int{Hobbit}},                 // the complete word
		{"  hobbit", []int{Hobbit}},                // leading spaces
		{`"history brief"`, []int{Brief, Sapiens}}, // quotes are no phrase
		{`"brief history" "time"`, []int{Brief}},   // ...
		{`history "brief`, []int{Brief, Sapiens}},  // an unbalanced quote
		{"-harry potter", []int{HP1, HP2}},         // a dash is no negation
		{"harry -potter", []int{HP1, HP2}},         // ...
		{"harry -chamber", []int{HP2}},             // ...
		{"-hobbit", []int{Hobbit}},                 // ...
		{"harry - potter", []int{HP1, HP2}},        // a dash alone
		{"ＨＯＢＢＩＴ", []int{Hobbit}},                  // full-width letters
		{"ｈｏｂ", []int{Hobbit}},                     // ... as a prefix
		{"ﬁre ring", []int{LOTR}},                  // a ligature
	} {
		res := mustSearch(t, ix, search.Query{Text: tc.text})
		wantSet(t, fmt.Sprintf("%q", tc.text), res, tc.want...)
	}
}

// testSuggestPopularity: authors are suggested by the sales of their books, not by how
// many they wrote ("jane": the author of a bestseller before prolific unsold ones).
func testSuggestPopularity(t *testing.T, ix search.Index) {
	ctx := context.Background()
	austen := extraDoc(4000, "Pride and Prejudice", "", "Jane Austen")
	austen.SalesCount = 50000
	austen.AuthorIDs = []uuid.UUID{AuthorID("Jane Austen")}
	docs := []search.Document{austen}
	for a := range 6 {
		name := fmt.Sprintf("Janet %c", 'K'+a)
		for b := range 3 {
			d := extraDoc(4100+10*a+b, fmt.Sprintf("Volume %d", b), "", name)
			d.SalesCount = 10
			d.AuthorIDs = []uuid.UUID{AuthorID(name)}
			docs = append(docs, d)
		}
	}
	if err := ix.Upsert(ctx, docs); err != nil {
		t.Fatal(err)
	}
	s, err := ix.Suggest(ctx, "jane", 8)
	if err != nil {
		t.Fatal(err)
	}
	want := search.Suggestion{Kind: search.SuggestAuthor, Text: "Jane Austen", ID: AuthorID("Jane Austen").String()}
	for _, x := range s {
		if x.Kind == search.SuggestAuthor {
			if x != want {
				t.Errorf("Suggest(jane) = %v, want %v the first author", s, want)
			}
			return
		}
	}
	t.Errorf("Suggest(jane) = %v: no author", s)
}
