// Package search declares the catalog search engine the resolvers use: full-text search
// with filters, facets, sorts and paging over books, and search-as-you-type suggestions.
//
// Two engines implement Index:
//   - search/embedded, the zero-setup default: Bleve (scorch, on disk) matches and scores
//     text; filters, facet counts and browse sorts come from in-memory roaring bitmaps.
//   - search/meili, the production adapter for Meilisearch.
//
// Both follow the same contract (search/searchtest runs one suite against each):
//
//   - Text is matched word by word and every word must match (AND), in the title, the
//     authors, the description or the ISBN. Case and accents are ignored ("Müller" finds
//     "muller"). The last word also matches as a prefix unless the text ends with a space
//     (search-as-you-type). Words of 4+ characters tolerate one typo, words of 8+ two; a
//     typo is an insertion, a deletion, a substitution or a transposition ("tolkein").
//   - A text that is a valid ISBN-10 or ISBN-13, with or without dashes or spaces, finds
//     exactly that book.
//   - Empty text matches every book (browsing).
//   - Filter values are data, never syntax: a category slug of `x" OR price_cents > 0`
//     matches the category with that literal slug (none).
//   - Each facet group is counted over the books matching the text and every filter
//     except the group's own (disjunctive faceting): with the genre "fantasy" selected,
//     the count shown for "romance" is how many results selecting it too would add.
//   - Engines are eventually consistent with the system of record; an Upsert or Delete
//     that returned nil is visible to the next Search.
//
// Validation of user input (length of the text, bounds of first/after) is the resolver's
// job; engines clamp what they are given and never panic on any input.
package search

import (
	"context"
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Document is what the engines index of a book. The outbox relay and `bookstore reindex`
// build it from the system of record.
type Document struct {
	ID    uuid.UUID
	ISBN  string // ISBN-13, 13 digits
	Title string
	// Authors are display names; AuthorIDs[i] is the id of Authors[i] (the two are
	// parallel; AuthorIDs may be shorter when ids are unknown).
	Authors     []string
	AuthorIDs   []uuid.UUID
	Description string
	// Categories are the slugs of the book's categories and of all their ancestors
	// ("science-fiction-fantasy", "epic-fantasy"); CategoryNames[i] is the display name
	// of Categories[i].
	Categories    []string
	CategoryNames []string
	PriceCents    int64
	Rating        float64 // average review rating, 0..5 (0 when unrated)
	RatingCount   int64
	SalesCount    int64
	PublishedAt   time.Time // the zero time when unknown
	InStock       bool
	Language      string // BCP 47, lower case ("en")
	// Version orders the states of one book: an Upsert never replaces a document with
	// one of a lower Version, so a writer that read the book earlier cannot bring an
	// older state back over a newer one. The indexer uses the database clock (Unix
	// microseconds) taken before it read the book; 0 means unversioned and always
	// replaces.
	Version int64
}

// Query is one search. The zero Query browses the whole catalog, most relevant first.
type Query struct {
	Text   string
	Filter Filter
	Sort   Sort
	// Limit is the page size: <= 0 means DefaultLimit, more than MaxLimit means MaxLimit.
	Limit int
	// Offset skips that many results (negative means 0). Resolvers encode cursors from it.
	Offset int
	// Exclude lists books the search must treat as absent: they are neither returned
	// nor counted in Total or in any facet. The resolvers exclude the hits whose book
	// is gone from the database until the index has caught up (at most MaxExclude;
	// more are ignored).
	Exclude []uuid.UUID
	// SkipFacets leaves Result.Facets empty, which is cheaper (Meilisearch needs extra
	// queries for disjunctive facets). Set it when the client did not ask for facets.
	SkipFacets bool
}

// Page bounds applied by the engines.
const (
	DefaultLimit = 20
	MaxLimit     = 1000
	MaxOffset    = 1 << 30
)

// MaxExclude bounds Query.Exclude.
const MaxExclude = 1000

// MaxQueryLen is the longest text the resolvers should accept, in characters (runes, as
// the schema says). Engines truncate longer text (Truncate) rather than fail.
const MaxQueryLen = 256

// Filter narrows a search. Zero fields do not filter. Values within a field are any-of;
// fields combine with AND.
type Filter struct {
	Categories    []string // category slugs (a book matches through its ancestors too)
	AuthorIDs     []uuid.UUID
	MinPriceCents *int64 // inclusive
	MaxPriceCents *int64 // inclusive
	MinRating     *float64
	InStock       *bool  // true: only books in stock; false: only books out of stock
	Language      string // exact language code, case-insensitive
}

// Sort orders results. Ties are broken by sales (best first), then by id, so pages are
// stable.
type Sort int

// The sorts. SortRelevance without text is the same as SortBestselling.
const (
	SortRelevance Sort = iota
	SortPriceAsc
	SortPriceDesc
	SortRating // best rated first (ties: more ratings first)
	SortNewest // most recently published first; unknown dates last
	SortBestselling
)

var sortNames = [...]string{"RELEVANCE", "PRICE_ASC", "PRICE_DESC", "RATING", "NEWEST", "BESTSELLING"}

func (s Sort) String() string {
	if s >= 0 && int(s) < len(sortNames) {
		return sortNames[s]
	}
	return "Sort(" + strconv.Itoa(int(s)) + ")"
}

// Valid reports whether s is one of the declared sorts; engines treat others as
// SortRelevance.
func (s Sort) Valid() bool { return s >= 0 && int(s) < len(sortNames) }

// Result is one page of a search.
type Result struct {
	// Total is the number of books matching the text and filters (Meilisearch caps it
	// at its pagination.maxTotalHits setting).
	Total  int
	Hits   []Hit
	Facets Facets
}

// Hit is one book of a page.
type Hit struct {
	ID         uuid.UUID
	Highlights []Highlight
}

// Highlight shows where a hit matched the text. Snippet is HTML: the field's text,
// escaped, with each matching word wrapped in <mark>...</mark>; a long description is
// cropped around its first match, with "…" where text was cut. Field is "title",
// "authors" (names joined by ", ") or "description". Fields without a match have no
// Highlight; browsing (empty text) has none.
type Highlight struct {
	Field   string
	Snippet string
}

// Highlight tags.
const (
	MarkStart = "<mark>"
	MarkEnd   = "</mark>"
	Ellipsis  = "…"
)

// Facets summarise the matching books for navigation. See the package comment for the
// disjunctive counting rule.
type Facets struct {
	// Genres counts books per category slug, most first (ties by slug), categories
	// without books omitted unless selected in the filter.
	Genres []FacetCount
	// Authors counts books per author id (as a string), the AuthorFacetLimit most
	// frequent, plus any selected in the filter.
	Authors []FacetCount
	// Languages counts books per language, most first.
	Languages []FacetCount
	// Prices counts books per PriceBuckets entry, in that order, zeros included.
	Prices []PriceBucket
	// MinPriceCents and MaxPriceCents bound the prices of the books counted in Prices,
	// that is without the price filter (0 and 0 when there are none): the range of a
	// price slider.
	MinPriceCents, MaxPriceCents int64
	// Ratings counts books rated at least 4, 3, 2 and 1 (RatingThresholds).
	Ratings []RatingBucket
	// InStock counts books in stock, without the InStock filter.
	InStock int
}

// FacetCount is the number of matching books with one facet value.
type FacetCount struct {
	Value string
	Count int
}

// PriceBucket is a price range, MinCents inclusive, MaxCents exclusive (0: unbounded).
type PriceBucket struct {
	MinCents, MaxCents int64
	Count              int
}

// RatingBucket counts books rated MinRating or better.
type RatingBucket struct {
	MinRating float64
	Count     int
}

// PriceBuckets are the fixed price ranges of Facets.Prices: under $10, $10-20, $20-30,
// $30-50 and $50 or more.
var PriceBuckets = []PriceBucket{
	{MinCents: 0, MaxCents: 1000},
	{MinCents: 1000, MaxCents: 2000},
	{MinCents: 2000, MaxCents: 3000},
	{MinCents: 3000, MaxCents: 5000},
	{MinCents: 5000, MaxCents: 0},
}

// PriceBucketOf returns the index in PriceBuckets of a price (negative prices count in
// the first bucket).
func PriceBucketOf(cents int64) int {
	for i := len(PriceBuckets) - 1; i > 0; i-- {
		if cents >= PriceBuckets[i].MinCents {
			return i
		}
	}
	return 0
}

// RatingThresholds are the minimum ratings of Facets.Ratings, in order.
var RatingThresholds = []float64{4, 3, 2, 1}

// AuthorFacetLimit is how many authors Facets.Authors lists (besides selected ones).
const AuthorFacetLimit = 10

// SuggestionKind says what a suggestion names.
type SuggestionKind string

// The kinds of suggestions.
const (
	SuggestCategory SuggestionKind = "CATEGORY"
	SuggestAuthor   SuggestionKind = "AUTHOR"
	SuggestTitle    SuggestionKind = "TITLE"
)

// Suggestion is one search-as-you-type completion. ID is the category slug, the author
// id or the book id ("" for an author whose id is unknown).
type Suggestion struct {
	Kind SuggestionKind
	Text string
	ID   string
}

// MaxSuggestions bounds Suggest's n.
const MaxSuggestions = 50

// Index is a search engine over the catalog. Implementations are safe for concurrent use.
type Index interface {
	// Upsert adds documents or replaces those with the same ID. Documents with a nil ID
	// are rejected (ErrInvalidDocument) before anything is written.
	Upsert(ctx context.Context, docs []Document) error
	// Delete removes documents; unknown ids are ignored.
	Delete(ctx context.Context, ids []uuid.UUID) error
	// Search runs a query.
	Search(ctx context.Context, q Query) (Result, error)
	// Suggest returns up to n completions of what a user is typing (n <= 0 means 10,
	// more than MaxSuggestions means MaxSuggestions): categories, authors and titles
	// with a word starting with prefix, in that order of kinds; see MergeSuggestions.
	Suggest(ctx context.Context, prefix string, n int) ([]Suggestion, error)
	// Count returns the number of documents.
	Count(ctx context.Context) (int, error)
	// Close releases the engine's resources.
	Close() error
}

// Meta is what an index records of the catalog it reflects, so that a server started on
// another database (or on a restored backup) notices that its index is not that
// catalog's.
type Meta struct {
	// CatalogID is the database's catalog id (store.DB.CatalogID).
	CatalogID uuid.UUID
	// Position is the outbox position applied: the creation time (database clock) of
	// the newest event handled, or for a rebuild the newest event (kept or pruned) when
	// it started reading the catalog.
	Position time.Time
}

// Writer is the write side of an index.
type Writer interface {
	Upsert(ctx context.Context, docs []Document) error
	Delete(ctx context.Context, ids []uuid.UUID) error
}

// Rebuildable is an index that knows which catalog it reflects and can be rebuilt
// without ever serving a half-built index. Both engines' production types implement it.
type Rebuildable interface {
	Index
	// Meta returns the recorded meta (the zero Meta for an index that has none).
	Meta(ctx context.Context) (Meta, error)
	// SetMeta records m.
	SetMeta(ctx context.Context, m Meta) error
	// Rebuild builds a fresh, empty index, lets fill write the whole catalog into it,
	// records m in it and then replaces the live index with it in one step. Searches
	// are answered by the old index until the swap, and by the new one after; documents
	// the fill did not write are gone. When fill (or the build) fails the live index is
	// left as it was. Writes to the live index while fill runs are not carried over: the
	// caller replays what changed since it began reading (see Meta.Position).
	Rebuild(ctx context.Context, m Meta, fill func(w Writer) error) error
}

// Errors engines return (wrapped).
var (
	ErrInvalidDocument = errors.New("search: invalid document")
	ErrInvalidQuery    = errors.New("search: invalid query")
	ErrClosed          = errors.New("search: index closed")
)

// Normalized returns q with its bounds applied and its filter values canonical (trimmed,
// lower-case slugs and language, duplicates removed), and an error wrapping
// ErrInvalidQuery when a number is NaN or infinite. Engines call it first; it is exported
// so that resolvers and caches can use the same canonical form.
func (q Query) Normalized() (Query, error) {
	q.Text = Truncate(q.Text)
	if q.Limit <= 0 {
		q.Limit = DefaultLimit
	}
	q.Limit = min(q.Limit, MaxLimit)
	q.Offset = min(max(q.Offset, 0), MaxOffset)
	if !q.Sort.Valid() {
		q.Sort = SortRelevance
	}
	f := &q.Filter
	f.Categories = canonStrings(f.Categories)
	f.Language = strings.ToLower(strings.TrimSpace(f.Language))
	f.AuthorIDs = canonIDs(f.AuthorIDs)
	q.Exclude = canonIDs(q.Exclude)
	q.Exclude = q.Exclude[:min(len(q.Exclude), MaxExclude)]
	if f.MinRating != nil && (math.IsNaN(*f.MinRating) || math.IsInf(*f.MinRating, 0)) {
		return q, errors.Join(ErrInvalidQuery, errors.New("minimum rating is not a number"))
	}
	return q, nil
}

// Empty reports whether f filters nothing.
func (f Filter) Empty() bool {
	return len(f.Categories) == 0 && len(f.AuthorIDs) == 0 && f.MinPriceCents == nil &&
		f.MaxPriceCents == nil && f.MinRating == nil && f.InStock == nil && f.Language == ""
}

func canonIDs(in []uuid.UUID) []uuid.UUID {
	if len(in) == 0 {
		return nil
	}
	ids := slices.Clone(in)
	slices.SortFunc(ids, func(a, b uuid.UUID) int { return strings.Compare(string(a[:]), string(b[:])) })
	return slices.Compact(ids)
}

func canonStrings(in []string) []string {
	if len(in) == 0 {
		return nil
	}
	out := make([]string, 0, len(in))
	for _, s := range in {
		if s = strings.ToLower(strings.TrimSpace(s)); s != "" {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Truncate cuts s to at most MaxQueryLen characters.
func Truncate(s string) string {
	if len(s) <= MaxQueryLen {
		return s // fewer bytes than the limit: fewer characters too
	}
	n := 0
	for i := range s {
		if n == MaxQueryLen {
			return s[:i]
		}
		n++
	}
	return s
}

// MergeSuggestions combines per-kind suggestion lists (each already ranked best first)
// into at most n: categories, then authors, then titles, each kind getting at most a
// quarter of n (rounded up) while the others can fill the rest, titles taking what is
// left. Duplicates (same kind and text, ignoring case) keep their first occurrence.
func MergeSuggestions(categories, authors, titles []Suggestion, n int) []Suggestion {
	categories, authors, titles = dedupe(categories), dedupe(authors), dedupe(titles)
	n = max(n, 0)
	quota := (n + 3) / 4
	nc := min(len(categories), quota, n)
	na := min(len(authors), quota, n-nc)
	nt := min(len(titles), n-nc-na)
	// Hand what titles leave over back to authors, then categories.
	spare := n - nc - na - nt
	extra := min(spare, len(authors)-na)
	na += extra
	spare -= extra
	nc += min(spare, len(categories)-nc)
	out := make([]Suggestion, 0, nc+na+nt)
	out = append(out, categories[:nc]...)
	out = append(out, authors[:na]...)
	return append(out, titles[:nt]...)
}

func dedupe(in []Suggestion) []Suggestion {
	seen := make(map[string]bool, len(in))
	out := in[:0:0]
	for _, s := range in {
		k := strings.ToLower(s.Text)
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, s)
	}
	return out
}

// SuggestLimit applies Suggest's bounds to n.
func SuggestLimit(n int) int {
	if n <= 0 {
		return 10
	}
	return min(n, MaxSuggestions)
}

// CanonicalCategories returns a document's category slugs as every engine indexes them —
// valid UTF-8, trimmed, lower case, empties and duplicates dropped — with their display
// names (the slug when a name is missing), in the document's order.
func CanonicalCategories(d *Document) (slugs, names []string) {
	clean := func(s string) string { return strings.TrimSpace(strings.ToValidUTF8(s, "\uFFFD")) }
	slugs, names = make([]string, 0, len(d.Categories)), make([]string, 0, len(d.Categories))
	seen := make(map[string]bool, len(d.Categories))
	for i, c := range d.Categories {
		c = strings.ToLower(clean(c))
		if c == "" || seen[c] {
			continue
		}
		seen[c] = true
		name := c
		if i < len(d.CategoryNames) && clean(d.CategoryNames[i]) != "" {
			name = clean(d.CategoryNames[i])
		}
		slugs, names = append(slugs, c), append(names, name)
	}
	return slugs, names
}
