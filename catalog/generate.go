package catalog

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore"
)

// MaxDemoBooks is the largest catalog Generate makes: its ISBNs are unique up to this
// many books.
const MaxDemoBooks = 10_000_000

// Generate streams a deterministic demo catalog of n books to fn, one Record at a time,
// stopping at fn's first error (returned wrapped). The same seed gives the same records
// in the same order, byte for byte, and book i does not depend on n: a larger catalog
// extends a smaller one with the same seed. Record.ID is derived from seed and index, so
// loading a catalog twice changes nothing.
//
// What callers and tests can rely on:
//   - ISBNs are valid ISBN-13s (978 and 979 prefixes), unique within a catalog.
//   - A genre tree of 8 top-level genres and 39 subgenres ("Science Fiction &
//     Fantasy" > "Space Opera"); every book is in one or two subgenres (leaf paths).
//   - Thousands of authors for 10,000 books, a few of them prolific; some books have
//     co-authors; series such as "The Ember Gate, Book 3" share author and categories.
//   - Book 3 + 41k (k = 0, 1, ...) is one of a fixed list of "showcase" titles with
//     distinctive words, high sales and ratings, for search tests: "The Cartographer of
//     Lost Rivers", "The Silver Crown, Book 2", "Murder at Wexley Hall", ...
//   - Prices 299..4999 cents, mostly ending in 99; ratings 1.0..5.0 with one decimal,
//     skewed high (0 when RatingCount is 0); power-law sales; publication dates
//     1950-01..2026-11, recent years more common; language mostly "en", some "de", "fr",
//     "es"; about 8% of books out of stock and 7% at 1..5 units; 40..120-word
//     descriptions; 1..5 reviews on about 30% of books (BookID left zero for the loader).
func Generate(seed int64, n int, fn func(Record) error) error {
	if n < 0 || n > MaxDemoBooks {
		return fmt.Errorf("demo catalog: %d books requested, want 0..%d", n, MaxDemoBooks)
	}
	g := newDemoGen(seed)
	for i := range n {
		if err := fn(g.book(i)); err != nil {
			return fmt.Errorf("demo book %d: %w", i, err)
		}
	}
	return nil
}

// demoLastDay is the latest publication date and review time of the demo catalog.
var demoLastDay = time.Date(2026, time.November, 30, 0, 0, 0, 0, time.UTC)

type demoGen struct {
	seedIn int64
	seed   uint64 // mixed, for hashing author attributes
	rng    *rand.Rand
	ns     uuid.UUID // namespace of the book ids

	// ISBNs: group digits + (index*isbnMul + isbnAdd) mod 10^k, a bijection for each k.
	isbnMul, isbnAdd uint64

	series *demoSeries // the series being written, if any
}

// demoSeries carries what the next volume of a series shares with the first.
type demoSeries struct {
	name       string
	authors    []string
	lang       string
	cats       [][]string
	genre      *demoGenre
	leaf       *demoLeaf
	publisher  string
	date       time.Time
	next, last int
}

func newDemoGen(seed int64) *demoGen {
	s := uint64(seed)
	g := &demoGen{
		seedIn: seed,
		seed:   splitmix(s ^ 0x5eed_cafe_f00d_b00c),
		rng:    rand.New(rand.NewPCG(s, 0x9e37_79b9_7f4a_7c15)),
		ns:     uuid.NewSHA1(uuid.NameSpaceURL, []byte("https://github.com/shopfront/bookstore/catalog/demo")),
	}
	// Any multiplier coprime to 10 permutes 0..10^k-1.
	g.isbnMul = g.rng.Uint64N(1_000_000_000)/10*10 + []uint64{1, 3, 7, 9}[g.rng.IntN(4)]
	g.isbnAdd = g.rng.Uint64N(1_000_000_000)
	return g
}

// book returns book i; it must be called for i = 0, 1, 2, ... in order.
func (g *demoGen) book(i int) Record {
	r := g.rng
	rec := Record{Language: "en"}
	var genre *demoGenre
	var leaf *demoLeaf
	var date time.Time
	var seriesNo int
	featured := false

	switch {
	case i%41 == 3 && i/41 < len(showcase):
		sc := showcase[i/41]
		featured = true
		rec.Title, rec.Authors, rec.Publisher = sc.title, []string{sc.author}, sc.publisher
		genre, leaf = findLeaf(sc.cats[0])
		rec.Categories = sc.cats
		date = time.Date(sc.year, time.Month(1+r.IntN(12)), 1+r.IntN(28), 0, 0, 0, 0, time.UTC)
	case g.series != nil:
		s := g.series
		seriesNo = s.next
		rec.Title = fmt.Sprintf("%s, Book %d", s.name, s.next)
		rec.Authors, rec.Language, rec.Categories, rec.Publisher = s.authors, s.lang, s.cats, s.publisher
		genre, leaf = s.genre, s.leaf
		s.date = s.date.AddDate(1, r.IntN(12)-4, 0)
		date = s.date
		if s.next++; s.next > s.last {
			g.series = nil
		}
	default:
		lead := g.author(g.authorIndex(i))
		rec.Authors, rec.Language = []string{lead.name}, lead.lang
		for k := 0; k < 3 && r.IntN(100) < []int{10, 2, 0}[k]; k++ {
			if co := g.author(g.authorIndex(i)); co.lang == lead.lang && !slices.Contains(rec.Authors, co.name) {
				rec.Authors = append(rec.Authors, co.name)
			}
		}
		genre = lead.genre
		if r.IntN(100) >= 85 {
			genre = pickGenre(r)
		}
		if rec.Language != "en" {
			genre = &demoGenres[0] // their descriptions are novels'
		}
		leaf = &genre.leaves[r.IntN(len(genre.leaves))]
		rec.Categories = [][]string{{genre.name, leaf.name}}
		if r.IntN(100) < 20 {
			g2 := genre
			if r.IntN(100) < 30 && rec.Language == "en" {
				g2 = pickGenre(r)
			}
			if l2 := &g2.leaves[r.IntN(len(g2.leaves))]; l2 != leaf {
				rec.Categories = append(rec.Categories, []string{g2.name, l2.name})
			}
		}
		rec.Publisher = pick(r, publishers[rec.Language])
		date = g.pubDate(leaf)
		if genre.series && rec.Language == "en" && r.IntN(100) < 3 {
			// The first volume of a series; the next ones follow this book.
			last := 2 + r.IntN(6)
			if maxYear := 2026 - 2*last; date.Year() > maxYear {
				date = date.AddDate(maxYear-date.Year(), 0, 0)
			}
			name := g.expand(genre.seriesNames, genre, nil)
			g.series = &demoSeries{name: name, authors: rec.Authors, lang: rec.Language, cats: rec.Categories,
				genre: genre, leaf: leaf, publisher: rec.Publisher, date: date, next: 2, last: last}
			seriesNo = 1
			rec.Title = name + ", Book 1"
		} else if rec.Language == "en" {
			rec.Title = g.expand(genre.titles, genre, nil)
		} else {
			w := foreign[rec.Language]
			rec.Title = pick(r, w.titleStarts) + " " + pick(r, w.titleEnds)
		}
	}
	if date.After(demoLastDay) {
		date = demoLastDay
	}
	d := bookstore.Date{Time: date}
	rec.PublishedAt = &d

	id := uuid.NewSHA1(g.ns, []byte(fmt.Sprintf("%d/%d", g.seedIn, i)))
	rec.ID = &id
	rec.ISBN = g.isbn(i, rec.Language, date.Year())
	rec.CoverURL = "https://covers.example.com/" + rec.ISBN + ".jpg"

	dollars := genre.price[0] + r.IntN(genre.price[1]-genre.price[0]+1)
	cents := 99
	switch u := r.IntN(100); {
	case u < 8:
		cents = 95
	case u < 12:
		cents = 0
	case u < 15:
		cents = 49
	}
	rec.PriceCents = int64(min(max(dollars*100+cents, 299), 4999))

	mean, sd := genre.pages[0], genre.pages[1]
	if leaf.pages[0] > 0 {
		mean, sd = leaf.pages[0], leaf.pages[1]
	}
	rec.PageCount = int32(min(max(int(float64(mean)+float64(sd)*r.NormFloat64()), 80), 1200))

	// Sales: Pareto with alpha 1.16 (80/20); showcase titles are bestsellers.
	sales := 20 * (math.Pow(1-r.Float64(), -1/1.16) - 1)
	if featured {
		sales = 40_000 + float64(r.IntN(160_000))
	}
	rec.SalesCount = int64(min(sales, 2_000_000))
	rc := float64(rec.SalesCount)*(0.02+0.08*r.Float64()) + float64(r.IntN(4))
	rec.RatingCount = int64(min(rc, 5000))

	switch u := r.IntN(100); {
	case featured:
		rec.Stock = 20 + int64(r.IntN(181))
	case u < 8:
		rec.Stock = 0
	case u < 15:
		rec.Stock = 1 + int64(r.IntN(5))
	default:
		rec.Stock = 6 + int64(r.IntN(195))
	}

	ctx := map[string]string{"title": rec.Title, "author": rec.Authors[0], "author_last": lastWord(rec.Authors[0])}
	if seriesNo > 1 {
		ctx["series_no"] = ordinal(seriesNo)
	}
	hook := ""
	if featured {
		hook = showcase[i/41].hook
	}
	rec.Description = g.description(genre, leaf, rec.Language, ctx, seriesNo, hook)

	base, spread := 4.15, 0.55
	switch {
	case featured:
		base, spread = 4.6, 0.15
	case rec.RatingCount < 10:
		spread = 0.9
	}
	if rec.RatingCount > 0 {
		v := min(max(base+spread*r.NormFloat64(), 1), 5)
		rec.Rating = math.Round(v*10) / 10
	}
	if (featured || r.IntN(100) < 30) && date.Before(demoLastDay.AddDate(0, -1, 0)) {
		rec.Reviews = g.reviews(rec.Rating, date)
		rec.RatingCount = max(rec.RatingCount, int64(len(rec.Reviews)))
		if rec.Rating == 0 {
			sum := 0
			for _, rv := range rec.Reviews {
				sum += int(rv.Rating)
			}
			rec.Rating = math.Round(float64(sum)/float64(len(rec.Reviews))*10) / 10
		}
	}
	return rec
}

// authorIndex draws the author of book i: index floor((0.8i+20) * U^1.5), so low indices
// (prolific authors) come up often, and the pool grows with the catalog, giving about
// 4,000 authors per 10,000 books.
func (g *demoGen) authorIndex(i int) int {
	return int((0.8*float64(i) + 20) * math.Pow(g.rng.Float64(), 1.5))
}

type demoAuthor struct {
	name, lang string
	genre      *demoGenre
}

// author derives author j's name, language and favourite genre from j alone, so that an
// author keeps them in every book.
func (g *demoGen) author(j int) demoAuthor {
	h := splitmix(g.seed ^ uint64(j)*0x2545_f491_4f6c_dd1d)
	a := demoAuthor{lang: "en"}
	switch u := h % 100; {
	case u >= 97:
		a.lang = "es"
	case u >= 93:
		a.lang = "fr"
	case u >= 88:
		a.lang = "de"
	}
	h = splitmix(h)
	a.genre = genreAt(int(h % uint64(genreWeightSum)))
	names := authorNames[a.lang]
	nf, nl := uint64(len(names.first)), uint64(len(names.last))
	// A bijection of 0..nf*nl-1, so English authors' names are distinct up to nf*nl of
	// them; beyond that a middle initial tells them apart. The smaller pools of the other
	// languages repeat names sooner: such authors merge, as namesakes do.
	k := (uint64(j)*7919 + g.seed%(nf*nl)) % (nf * nl)
	a.name = names.first[k%nf] + " " + names.last[k/nf]
	en := authorNames["en"]
	if m := uint64(j) / uint64(len(en.first)*len(en.last)); m > 0 {
		a.name = names.first[k%nf] + " " + string(rune('A'+(m-1)%26)) + ". " + names.last[k/nf]
	}
	return a
}

// isbn returns book i's ISBN-13: a registration group that fits the language, then
// the book's number within the group, unique for i < 10^7.
func (g *demoGen) isbn(i int, lang string, year int) string {
	var group string
	switch u := g.rng.IntN(100); lang {
	case "de":
		group = "9783"
	case "fr":
		group = "9782"
		if u < 20 {
			group = "97910"
		}
	case "es":
		group = "97884"
	default:
		switch {
		case year >= 2020 && u < 50:
			group = "9798"
		case u < 60:
			group = "9780"
		default:
			group = "9781"
		}
	}
	k := 12 - len(group)
	mod := uint64(math.Pow10(k))
	num := (uint64(i)%mod*(g.isbnMul%mod) + g.isbnAdd) % mod
	body := group + fmt.Sprintf("%0*d", k, num)
	return body + string(ISBN13CheckDigit(body))
}

// pubDate draws a publication date from 1950 to 2026-11, recent years far more likely;
// classics are old.
func (g *demoGen) pubDate(leaf *demoLeaf) time.Time {
	r := g.rng
	year := 2026 - int(77*math.Pow(r.Float64(), 2.2))
	if leaf.old {
		year = 1950 + r.IntN(40)
	}
	month := 1 + r.IntN(12)
	if year == 2026 {
		month = 1 + r.IntN(11)
	}
	return time.Date(year, time.Month(month), 1+r.IntN(28), 0, 0, 0, 0, time.UTC)
}

// description writes 40..120 words: sentences from the genre's templates in the order
// hook, premise, then closers, until a random target length is reached.
func (g *demoGen) description(genre *demoGenre, leaf *demoLeaf, lang string, ctx map[string]string, seriesNo int, hook string) string {
	r := g.rng
	target := 40 + r.IntN(81)
	var sb strings.Builder
	words := 0
	add := func(s string) bool {
		w := len(strings.Fields(s))
		if words+w > 120 {
			return false
		}
		if sb.Len() > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(s)
		words += w
		return true
	}
	if lang != "en" {
		// The first sentence introduces {hero}; the others follow in any order.
		w := foreign[lang]
		ctx["hero"] = pick(r, w.names)
		add(g.expand(w.sentences[:1], nil, ctx))
		for _, k := range r.Perm(len(w.sentences) - 1) {
			if words >= target {
				break
			}
			add(g.expand(w.sentences[k+1:k+2], nil, ctx))
		}
		return sb.String()
	}
	first := pick(r, demoWords["name"])
	if leaf.kids {
		first = pick(r, genre.words["kidname"])
		ctx["kidname"] = first
	}
	ctx["hero"], ctx["hero_first"] = first+" "+pick(r, demoWords["surname"]), first
	// Fix the words a description repeats; a "2" slot differs from its partner.
	for _, slot := range []string{"place", "role", "theme", "topic"} {
		v, ok := lookupWords(genre, slot)
		if !ok {
			continue
		}
		ctx[slot] = pick(r, v)
		ctx[slot+"2"] = pick(r, v)
		for tries := 0; ctx[slot+"2"] == ctx[slot] && tries < 5; tries++ {
			ctx[slot+"2"] = pick(r, v)
		}
	}
	switch {
	case hook != "":
		add(hook)
	case leaf.kids:
		add(g.expand(kidsHooks, genre, ctx))
	case seriesNo > 1:
		add(g.expand(sequelHooks, genre, ctx))
	default:
		add(g.expand(genre.hooks, genre, ctx))
	}
	if hook == "" {
		add(g.expand(genre.premises, genre, ctx))
	}
	// Closers, then fillers, each used at most once.
	for _, k := range r.Perm(len(genre.closers)) {
		if words >= target {
			break
		}
		add(g.expand(genre.closers[k:k+1], genre, ctx))
	}
	for _, k := range r.Perm(len(fillers)) {
		if words >= 40 {
			break
		}
		add(g.expand(fillers[k:k+1], genre, ctx))
	}
	return sb.String()
}

// reviews writes 1..5 reviews whose stars scatter around the book's rating, dated after
// publication and no later than demoLastDay.
func (g *demoGen) reviews(rating float64, published time.Time) []bookstore.Review {
	r := g.rng
	n := 1 + r.IntN(5)
	out := make([]bookstore.Review, n)
	start := published.Add(24 * time.Hour)
	window := min(int(demoLastDay.Sub(start).Hours()/24), 1000)
	if rating == 0 {
		rating = 4
	}
	for k := range out {
		stars := int(math.Round(min(max(rating+0.9*r.NormFloat64(), 1), 5)))
		b := reviewBank[stars-1]
		names := authorNames["en"]
		body := pick(r, b.bodies)
		if r.IntN(2) == 0 {
			body += " " + pick(r, b.bodies2)
		}
		out[k] = bookstore.Review{
			Rating:       int32(stars),
			Title:        pick(r, b.titles),
			Body:         body,
			ReviewerName: pick(r, names.first) + " " + pick(r, names.last)[:1] + ".",
			CreatedAt:    start.Add(time.Duration(r.IntN(max(window, 1)))*24*time.Hour + time.Duration(r.IntN(86400))*time.Second),
		}
	}
	return out
}

// expand fills one of templates: {slot} takes ctx[slot] when set, otherwise a random
// word of the slot from the genre's list or the shared one. It fixes what blind
// substitution gets wrong: "a" before a vowel becomes "an", "The the Vicarage" loses a
// "the", and a leading lower-case letter is capitalised.
func (g *demoGen) expand(templates []string, genre *demoGenre, ctx map[string]string) string {
	t := pick(g.rng, templates)
	var sb strings.Builder
	for {
		open := strings.IndexByte(t, '{')
		if open < 0 {
			sb.WriteString(t)
			break
		}
		end := strings.IndexByte(t[open:], '}') + open
		sb.WriteString(t[:open])
		slot := t[open+1 : end]
		v, ok := ctx[slot]
		if !ok {
			words, ok := lookupWords(genre, slot)
			if !ok {
				panic("catalog demo: no words for {" + slot + "}") // a typo in the word lists
			}
			v = pick(g.rng, words)
		}
		out := sb.String()
		switch {
		case v == "":
		case strings.HasPrefix(v, "the ") && (out == "The " || strings.HasSuffix(out, " the ") || strings.HasSuffix(out, " The ")):
			v = v[len("the "):]
		case strings.ContainsRune("aeiouAEIOU", rune(v[0])) && (out == "A " || out == "a " || strings.HasSuffix(out, " a ") || strings.HasSuffix(out, " A ")):
			sb.Reset()
			sb.WriteString(out[:len(out)-1] + "n ")
		}
		sb.WriteString(v)
		t = t[end+1:]
	}
	s := sb.String()
	if s != "" && s[0] >= 'a' && s[0] <= 'z' {
		s = string(s[0]-'a'+'A') + s[1:]
	}
	return s
}

func lookupWords(genre *demoGenre, slot string) ([]string, bool) {
	if genre != nil {
		if v, ok := genre.words[slot]; ok {
			return v, true
		}
	}
	v, ok := demoWords[slot]
	return v, ok
}

// demoGenre is a top-level genre of the demo tree and how its books look.
type demoGenre struct {
	name   string
	weight int
	leaves []demoLeaf
	price  [2]int // dollars, min and max
	pages  [2]int // mean and standard deviation
	series bool   // has series

	titles, seriesNames      []string
	hooks, premises, closers []string
	words                    map[string][]string
}

type demoLeaf struct {
	name  string
	pages [2]int // overrides the genre's when set
	old   bool   // published 1950..1989
	kids  bool   // picture-book style description
}

var genreWeightSum = func() int {
	sum := 0
	for _, g := range demoGenres {
		sum += g.weight
	}
	return sum
}()

func genreAt(u int) *demoGenre {
	for i := range demoGenres {
		if u -= demoGenres[i].weight; u < 0 {
			return &demoGenres[i]
		}
	}
	return &demoGenres[len(demoGenres)-1]
}

func pickGenre(r *rand.Rand) *demoGenre { return genreAt(r.IntN(genreWeightSum)) }

// findLeaf returns the genre and leaf of a path; showcase entries name existing ones.
func findLeaf(path []string) (*demoGenre, *demoLeaf) {
	for i := range demoGenres {
		g := &demoGenres[i]
		for j := range g.leaves {
			if g.name == path[0] && g.leaves[j].name == path[1] {
				return g, &g.leaves[j]
			}
		}
	}
	panic("catalog demo: unknown category " + strings.Join(path, " > "))
}

// demoCategoryPaths returns every path of the demo tree: each genre, then its leaves.
func demoCategoryPaths() [][]string {
	var out [][]string
	for _, g := range demoGenres {
		out = append(out, []string{g.name})
		for _, l := range g.leaves {
			out = append(out, []string{g.name, l.name})
		}
	}
	return out
}

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

func lastWord(s string) string { return s[strings.LastIndexByte(s, ' ')+1:] }

func ordinal(n int) string {
	switch n {
	case 2:
		return "second"
	case 3:
		return "third"
	case 4:
		return "fourth"
	case 5:
		return "fifth"
	case 6:
		return "sixth"
	case 7:
		return "seventh"
	}
	return strconv.Itoa(n) + "th"
}

// splitmix is SplitMix64's finaliser: a cheap, well-mixed hash of x.
func splitmix(x uint64) uint64 {
	x += 0x9e37_79b9_7f4a_7c15
	x = (x ^ x>>30) * 0xbf58_476d_1ce4_e5b9
	x = (x ^ x>>27) * 0x94d0_49bb_1331_11eb
	return x ^ x>>31
}
