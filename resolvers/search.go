package resolvers

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"
	"github.com/google/uuid"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/graph/model"
	"github.com/shopfront/bookstore/loaders"
	"github.com/shopfront/bookstore/search"
	"github.com/shopfront/bookstore/store"
)

// Search limits. Deep offsets are refused rather than served slowly: shoppers refine a
// query long before page 500, and crawlers use the catalog listing instead.
const (
	maxSearchOffset   = 10_000
	maxFilterValues   = 20
	maxSuggestPrefix  = 100
	maxSuggestResults = 20
)

var languageRE = regexp.MustCompile(`^[a-zA-Z]{2,3}(-[a-zA-Z0-9]{1,8})*$`)

// A search cursor is "s2:<offset of the next result>:<query fingerprint>", base64: the
// fingerprint (of the text, filter and sort) makes a cursor of another search fail
// loudly instead of paging through the wrong results. Offsets rather than keysets
// because relevance order has no key a cursor could carry; the schema says pages are a
// snapshot only while the index is unchanged.
func searchCursor(offset int, fp string) string {
	return base64.RawURLEncoding.EncodeToString([]byte("s2:" + strconv.Itoa(offset) + ":" + fp))
}

// searchFingerprint names a search's results (not its page): the normalised query text,
// filter and sort.
func searchFingerprint(q search.Query) string {
	q, _ = q.Normalized()
	key, _ := json.Marshal(struct {
		T string
		F search.Filter
		S search.Sort
	}{q.Text, q.Filter, q.Sort})
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:8])
}

func parseSearchCursor(after *string, fp string) (int, error) {
	s, err := cursorArg(after)
	if err != nil || s == "" {
		return 0, err
	}
	bad := bookstore.InvalidField("after", "invalid cursor; pass a cursor returned by search")
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return 0, bad
	}
	parts := strings.Split(string(raw), ":")
	if len(parts) != 3 || parts[0] != "s2" {
		return 0, bad
	}
	n, err := strconv.Atoi(parts[1])
	if err != nil || n < 0 {
		return 0, bad
	}
	if parts[2] != fp {
		return 0, bookstore.InvalidField("after", "the cursor belongs to another search (query, filter or sort); start again without after")
	}
	if n > maxSearchOffset {
		return 0, bookstore.InvalidField("after", "results beyond the first %d are not served; refine the query", maxSearchOffset)
	}
	return n, nil
}

// searchWindow applies the paging cap: of total matches only the first maxSearchOffset
// can be paged through, so totalCount says how many can be reached, a page never
// reaches past them and hasNextPage is false on the last reachable page.
func searchWindow(offset, first, total int) (limit, reachable int, hasNext bool) {
	reachable = min(total, maxSearchOffset)
	limit = max(min(first, reachable-offset), 0)
	return limit, reachable, offset+limit < reachable
}

// maxGhostRounds bounds how often one search is run again without hits whose book is
// gone: each round excludes every ghost found so far.
const maxGhostRounds = 3

var errNoSearch = bookstore.Errorf(bookstore.CodeUnavailable, "search is not available")

func (r *queryResolver) search(ctx context.Context, text string, in *model.SearchFilter, sort *model.SearchSort, first *int, after *string) (*model.SearchResult, error) {
	if r.Index == nil {
		return nil, errNoSearch
	}
	if utf8.RuneCountInString(text) > search.MaxQueryLen {
		return nil, bookstore.InvalidField("query", "at most %d characters", search.MaxQueryLen)
	}
	n, err := pageSize(first)
	if err != nil {
		return nil, err
	}
	f, err := searchFilter(in)
	if err != nil {
		return nil, err
	}
	q := search.Query{Text: text, Filter: f, Sort: searchSort(sort), SkipFacets: !fieldRequested(ctx, "facets")}
	fp := searchFingerprint(q)
	offset, err := parseSearchCursor(after, fp)
	if err != nil {
		return nil, err
	}
	res, books, err := r.searchBooks(ctx, q, offset, n)
	if err != nil {
		return nil, err
	}
	limit, reachable, hasNext := searchWindow(offset, n, res.Total)
	out := &model.SearchResult{TotalCount: reachable, Edges: []*model.SearchEdge{}}
	for i, h := range res.Hits[:min(len(res.Hits), limit)] {
		if books[i] == nil {
			continue // still missing after maxGhostRounds: dropped, and queued for deletion
		}
		e := &model.SearchEdge{Cursor: searchCursor(offset+i+1, fp), Node: books[i], Highlights: []*model.Highlight{}}
		for _, hl := range h.Highlights {
			e.Highlights = append(e.Highlights, &model.Highlight{Field: hl.Field, Snippet: hl.Snippet})
		}
		out.Edges = append(out.Edges, e)
	}
	pi := &bookstore.PageInfo{HasPreviousPage: offset > 0, HasNextPage: hasNext}
	if len(out.Edges) > 0 {
		start, end := out.Edges[0].Cursor, out.Edges[len(out.Edges)-1].Cursor
		pi.StartCursor, pi.EndCursor = &start, &end
	}
	out.PageInfo = pi
	if out.Facets, err = facets(ctx, res, f); err != nil {
		return nil, err
	}
	return out, nil
}

// searchBooks runs q for the page at offset and loads its books. A hit whose book is
// gone from the database (deleted behind the index's back, or its event not yet
// handled) is a drift of the index: it is logged, counted, queued for deletion from
// the index (an outbox event makes the relay re-read the book and delete its
// document), and the search runs again excluding it, so that totals, facets and pages
// agree with the books that can be shown.
func (r *queryResolver) searchBooks(ctx context.Context, q search.Query, offset, n int) (search.Result, []*bookstore.Book, error) {
	limit, _, _ := searchWindow(offset, n, maxSearchOffset)
	q.Offset, q.Limit = offset, limit
	if limit == 0 {
		q.Limit = 1 // engines treat 0 as "default"; the hits are dropped by the caller
	}
	// Ghosts met by earlier searches stay excluded from every page until the relay has
	// deleted them, so that later pages count as the first did.
	q.Exclude = r.knownGhosts()
	for round := 1; ; round++ {
		res, err := r.Index.Search(ctx, q)
		if err != nil {
			return res, nil, err
		}
		if limit == 0 {
			res.Hits = nil
		}
		ids := make([]uuid.UUID, len(res.Hits))
		for i, h := range res.Hits {
			ids[i] = h.ID
		}
		books, errs := loaders.For(ctx).Book.LoadMany(ctx, ids)()
		var ghosts []uuid.UUID
		for i := range res.Hits {
			if i < len(errs) && errs[i] != nil {
				return res, nil, errs[i]
			}
			if books[i] == nil {
				ghosts = append(ghosts, ids[i])
			}
		}
		if len(ghosts) == 0 {
			return res, books, nil
		}
		r.noteGhosts(ctx, ghosts)
		if round == maxGhostRounds || len(q.Exclude)+len(ghosts) > search.MaxExclude {
			return res, books, nil
		}
		q.Exclude = append(q.Exclude, ghosts...)
	}
}

// knownGhosts returns the ghosts queued for deletion within ghostRequeue (at most
// search.MaxExclude).
func (r *queryResolver) knownGhosts() []uuid.UUID {
	var ids []uuid.UUID
	now := time.Now()
	r.ghostQueued.Range(func(k, t any) bool {
		if now.Sub(t.(time.Time)) < ghostRequeue {
			ids = append(ids, k.(uuid.UUID))
		}
		return len(ids) < search.MaxExclude
	})
	return ids
}

func (r *queryResolver) noteGhosts(ctx context.Context, ids []uuid.UUID) {
	r.searchGhosts.Add(int64(len(ids)))
	if r.Log != nil {
		r.Log.WarnContext(ctx, "search index drift: hits whose book is gone", "count", len(ids), "ids", ids)
	}
	if r.DB == nil {
		return
	}
	// One event per ghost until the relay has had time to handle it, however many
	// searches meet it meanwhile.
	now := time.Now()
	r.ghostQueued.Range(func(k, t any) bool {
		if now.Sub(t.(time.Time)) >= ghostRequeue {
			r.ghostQueued.Delete(k)
		}
		return true
	})
	var queue []uuid.UUID
	for _, id := range ids {
		if t, ok := r.ghostQueued.Load(id); ok && now.Sub(t.(time.Time)) < ghostRequeue {
			continue
		}
		r.ghostQueued.Store(id, now)
		queue = append(queue, id)
	}
	// The search answers either way; a failed enqueue is retried by the next search
	// that meets the ghost.
	if err := r.DB.Outbox.Notify(context.WithoutCancel(ctx), store.TopicBookChanged, queue); err != nil {
		for _, id := range queue {
			r.ghostQueued.Delete(id)
		}
		if r.Log != nil {
			r.Log.ErrorContext(ctx, "queue ghost search documents for deletion", "err", err)
		}
	}
}

// ghostRequeue is how long a queued ghost is not queued again.
const ghostRequeue = 30 * time.Second

// fieldRequested reports whether the current field's selection includes name.
func fieldRequested(ctx context.Context, name string) bool {
	for _, f := range graphql.CollectFieldsCtx(ctx, nil) {
		if f.Name == name {
			return true
		}
	}
	return false
}

func searchSort(s *model.SearchSort) search.Sort {
	if s == nil {
		return search.SortRelevance
	}
	switch *s {
	case model.SearchSortPriceAsc:
		return search.SortPriceAsc
	case model.SearchSortPriceDesc:
		return search.SortPriceDesc
	case model.SearchSortRating:
		return search.SortRating
	case model.SearchSortNewest:
		return search.SortNewest
	case model.SearchSortBestselling:
		return search.SortBestselling
	}
	return search.SortRelevance
}

// searchFilter validates the filter. Values stay data all the way down: the engines
// never splice them into a query language unescaped.
func searchFilter(in *model.SearchFilter) (search.Filter, error) {
	var f search.Filter
	if in == nil {
		return f, nil
	}
	if len(in.CategorySlugs) > maxFilterValues {
		return f, bookstore.InvalidField("filter.categorySlugs", "at most %d values", maxFilterValues)
	}
	for _, s := range in.CategorySlugs {
		if len(s) > 100 || !slugRE.MatchString(s) {
			return f, bookstore.InvalidField("filter.categorySlugs", "malformed category slug")
		}
		f.Categories = append(f.Categories, s)
	}
	if len(in.AuthorIds) > maxFilterValues {
		return f, bookstore.InvalidField("filter.authorIds", "at most %d values", maxFilterValues)
	}
	for _, id := range in.AuthorIds {
		u, err := parseTypedID("filter.authorIds", typeAuthor, id)
		if err != nil {
			return f, err
		}
		f.AuthorIDs = append(f.AuthorIDs, u)
	}
	if in.MinPriceCents != nil {
		if *in.MinPriceCents < 0 {
			return f, bookstore.InvalidField("filter.minPriceCents", "must be >= 0")
		}
		v := int64(*in.MinPriceCents)
		f.MinPriceCents = &v
	}
	if in.MaxPriceCents != nil {
		if *in.MaxPriceCents < 0 {
			return f, bookstore.InvalidField("filter.maxPriceCents", "must be >= 0")
		}
		v := int64(*in.MaxPriceCents)
		f.MaxPriceCents = &v
	}
	if f.MinPriceCents != nil && f.MaxPriceCents != nil && *f.MinPriceCents > *f.MaxPriceCents {
		return f, bookstore.InvalidField("filter.maxPriceCents", "must be >= minPriceCents")
	}
	if in.MinRating != nil {
		if *in.MinRating < 0 || *in.MinRating > 5 {
			return f, bookstore.InvalidField("filter.minRating", "must be between 0 and 5")
		}
		f.MinRating = in.MinRating
	}
	f.InStock = in.InStock
	if in.Language != nil {
		if !languageRE.MatchString(*in.Language) || len(*in.Language) > 35 {
			return f, bookstore.InvalidField("filter.language", "not a BCP 47 language tag")
		}
		f.Language = strings.ToLower(*in.Language)
	}
	return f, nil
}

func facets(ctx context.Context, res search.Result, f search.Filter) (*model.SearchFacets, error) {
	out := &model.SearchFacets{Genres: []*model.CategoryFacet{}, PriceRanges: []*model.PriceRangeFacet{},
		Ratings: []*model.RatingFacet{}, Authors: []*model.AuthorFacet{}, InStockCount: res.Facets.InStock}
	l := loaders.For(ctx)
	tree, err := l.Tree(ctx)
	if err != nil {
		return nil, err
	}
	selected := map[string]bool{}
	for _, s := range f.Categories {
		selected[s] = true
	}
	for _, g := range res.Facets.Genres {
		if c := tree.BySlug(g.Value); c != nil {
			out.Genres = append(out.Genres, &model.CategoryFacet{Category: c, Count: g.Count, Selected: selected[g.Value]})
		}
	}
	for _, p := range res.Facets.Prices {
		pr := &model.PriceRangeFacet{Count: p.Count}
		if p.MinCents > 0 {
			v := int(p.MinCents)
			pr.MinCents = &v
		}
		if p.MaxCents > 0 {
			v := int(p.MaxCents)
			pr.MaxCents = &v
		}
		out.PriceRanges = append(out.PriceRanges, pr)
	}
	// The bounds are those of the books counted in Prices (without the price filter, a
	// slider's range): null only when there are none, whatever the filter leaves.
	counted := 0
	for _, p := range res.Facets.Prices {
		counted += p.Count
	}
	if counted > 0 {
		lo, hi := int(res.Facets.MinPriceCents), int(res.Facets.MaxPriceCents)
		out.MinPriceCents, out.MaxPriceCents = &lo, &hi
	}
	for _, rb := range res.Facets.Ratings {
		out.Ratings = append(out.Ratings, &model.RatingFacet{MinRating: rb.MinRating, Count: rb.Count})
	}
	var ids []uuid.UUID
	var counts []int
	for _, a := range res.Facets.Authors {
		if u, err := uuid.Parse(a.Value); err == nil {
			ids, counts = append(ids, u), append(counts, a.Count)
		}
	}
	authors, errs := l.Author.LoadMany(ctx, ids)()
	for i, a := range authors {
		if i < len(errs) && errs[i] != nil {
			return nil, errs[i]
		}
		if a != nil {
			out.Authors = append(out.Authors, &model.AuthorFacet{Author: a, Count: counts[i]})
		}
	}
	return out, nil
}

func (r *queryResolver) suggest(ctx context.Context, prefix string, first *int) ([]*model.Suggestion, error) {
	if r.Index == nil {
		return nil, errNoSearch
	}
	if !utf8.ValidString(prefix) || utf8.RuneCountInString(prefix) > maxSuggestPrefix {
		return nil, bookstore.InvalidField("prefix", "at most %d characters of text", maxSuggestPrefix)
	}
	n := 8
	if first != nil {
		if *first < 0 || *first > maxSuggestResults {
			return nil, bookstore.InvalidField("first", "must be between 0 and %d", maxSuggestResults)
		}
		n = *first
	}
	if n == 0 || strings.TrimSpace(prefix) == "" {
		return []*model.Suggestion{}, nil
	}
	sugs, err := r.Index.Suggest(ctx, prefix, n)
	if err != nil {
		return nil, err
	}
	l := loaders.For(ctx)
	tree, err := l.Tree(ctx)
	if err != nil {
		return nil, err
	}
	// Resolve targets in two batches (books and authors), whatever the number of
	// suggestions.
	thunks := make([]func() (bookstore.Node, error), len(sugs))
	for i, s := range sugs {
		switch s.Kind {
		case search.SuggestCategory:
			c := tree.BySlug(s.ID)
			thunks[i] = func() (bookstore.Node, error) { return nodeOrNil(c), nil }
		case search.SuggestAuthor:
			if u, err := uuid.Parse(s.ID); err == nil {
				th := l.Author.Load(ctx, u)
				thunks[i] = func() (bookstore.Node, error) { a, err := th(); return nodeOrNil(a), err }
			}
		case search.SuggestTitle:
			if u, err := uuid.Parse(s.ID); err == nil {
				th := l.Book.Load(ctx, u)
				thunks[i] = func() (bookstore.Node, error) { b, err := th(); return nodeOrNil(b), err }
			}
		}
	}
	out := make([]*model.Suggestion, 0, len(sugs))
	for i, s := range sugs {
		sg := &model.Suggestion{Kind: model.SuggestionKind(s.Kind), Text: s.Text}
		if thunks[i] != nil {
			t, err := thunks[i]()
			if err != nil {
				return nil, err
			}
			sg.Target = t
		}
		out = append(out, sg)
	}
	return out, nil
}

// nodeOrNil keeps a typed nil pointer from becoming a non-nil interface.
func nodeOrNil[T any](p *T) bookstore.Node {
	if p == nil {
		return nil
	}
	return p
}
