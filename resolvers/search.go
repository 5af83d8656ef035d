package resolvers

import (
	"context"
	"encoding/base64"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"
	"github.com/google/uuid"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/graph/model"
	"github.com/shopfront/bookstore/loaders"
	"github.com/shopfront/bookstore/search"
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

// search cursors are opaque offsets: "s:<offset of the next result>".
func searchCursor(offset int) string {
	return base64.RawURLEncoding.EncodeToString([]byte("s:" + strconv.Itoa(offset)))
}

func parseSearchCursor(after *string) (int, error) {
	s, err := cursorArg(after)
	if err != nil || s == "" {
		return 0, err
	}
	bad := bookstore.InvalidField("after", "invalid cursor; pass a cursor returned by search")
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return 0, bad
	}
	n, err := strconv.Atoi(strings.TrimPrefix(string(raw), "s:"))
	if err != nil || !strings.HasPrefix(string(raw), "s:") || n < 0 {
		return 0, bad
	}
	if n > maxSearchOffset {
		return 0, bookstore.InvalidField("after", "results beyond the first %d are not served; refine the query", maxSearchOffset)
	}
	return n, nil
}

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
	offset, err := parseSearchCursor(after)
	if err != nil {
		return nil, err
	}
	f, err := searchFilter(in)
	if err != nil {
		return nil, err
	}
	q := search.Query{Text: text, Filter: f, Sort: searchSort(sort), Limit: n, Offset: offset,
		SkipFacets: !fieldRequested(ctx, "facets")}
	if n == 0 {
		q.Limit = 1 // engines treat 0 as "default"; the hits are dropped below
	}
	res, err := r.Index.Search(ctx, q)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		res.Hits = nil
	}
	out := &model.SearchResult{TotalCount: res.Total, Edges: []*model.SearchEdge{}}
	ids := make([]uuid.UUID, len(res.Hits))
	for i, h := range res.Hits {
		ids[i] = h.ID
	}
	books, errs := loaders.For(ctx).Book.LoadMany(ctx, ids)()
	for i, h := range res.Hits {
		if i < len(errs) && errs[i] != nil {
			return nil, errs[i]
		}
		if books[i] == nil {
			continue // deleted since it was indexed; its event removes it from the index
		}
		e := &model.SearchEdge{Cursor: searchCursor(offset + i + 1), Node: books[i], Highlights: []*model.Highlight{}}
		for _, hl := range h.Highlights {
			e.Highlights = append(e.Highlights, &model.Highlight{Field: hl.Field, Snippet: hl.Snippet})
		}
		out.Edges = append(out.Edges, e)
	}
	pi := &bookstore.PageInfo{HasPreviousPage: offset > 0, HasNextPage: offset+len(res.Hits) < res.Total && offset+len(res.Hits) < maxSearchOffset}
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
	if res.Total > 0 && len(res.Facets.Prices) > 0 {
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
