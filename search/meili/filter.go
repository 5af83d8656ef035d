package meili

import (
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore/search"
)

// Filter groups, one per facet group, in the order of the facets they narrow.
const (
	groupGenre = iota
	groupAuthor
	groupPrice
	groupRating
	groupStock
	groupLanguage
	numGroups
)

// quote returns s as a Meilisearch filter string literal. The filter parser reads a
// double-quoted value up to the first quote not preceded by a backslash and then
// unescapes backslash sequences, so escaping every backslash and every double quote
// makes any value, whatever it contains, one literal: `Fantasy" OR price_cents > 0`
// becomes "Fantasy\" OR price_cents > 0", which matches nothing. Unescaping `\\` needs
// Meilisearch 1.4 or later (its changelog: "Meilisearch unescapes \\ to a single \");
// earlier versions kept both backslashes.
func quote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '\\' || c == '"' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}

// in renders `attr IN ["a", "b"]`.
func in(attr string, values []string) string {
	var b strings.Builder
	b.WriteString(attr)
	b.WriteString(" IN [")
	for i, v := range values {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(quote(v))
	}
	b.WriteString("]")
	return b.String()
}

// filterGroups renders each active group of f as a filter expression ("" when the
// group does not filter). Only attribute names and numbers are written bare; every
// string comes from quote.
func filterGroups(f *search.Filter) [numGroups]string {
	var g [numGroups]string
	if len(f.Categories) > 0 {
		g[groupGenre] = in("categories", f.Categories)
	}
	if len(f.AuthorIDs) > 0 {
		ids := make([]string, len(f.AuthorIDs))
		for i, id := range f.AuthorIDs {
			ids[i] = id.String()
		}
		g[groupAuthor] = in("author_ids", ids)
	}
	var price []string
	if f.MinPriceCents != nil {
		price = append(price, "price_cents >= "+strconv.FormatInt(*f.MinPriceCents, 10))
	}
	if f.MaxPriceCents != nil {
		price = append(price, "price_cents <= "+strconv.FormatInt(*f.MaxPriceCents, 10))
	}
	g[groupPrice] = strings.Join(price, " AND ")
	if f.MinRating != nil {
		g[groupRating] = "rating >= " + strconv.FormatFloat(*f.MinRating, 'f', -1, 64)
	}
	if f.InStock != nil {
		g[groupStock] = "in_stock = " + strconv.FormatBool(*f.InStock)
	}
	if f.Language != "" {
		g[groupLanguage] = "language = " + quote(f.Language)
	}
	return g
}

// joinFilter ANDs the groups but skip (-1: none) and the extra conditions.
func joinFilter(groups [numGroups]string, skip int, extra ...string) string {
	var parts []string
	for i, g := range groups {
		if g != "" && i != skip {
			parts = append(parts, "("+g+")")
		}
	}
	for _, e := range extra {
		if e != "" {
			parts = append(parts, "("+e+")")
		}
	}
	return strings.Join(parts, " AND ")
}

// excludeFilter is the filter leaving out the books of search.Query.Exclude.
func excludeFilter(ids []uuid.UUID) string {
	if len(ids) == 0 {
		return ""
	}
	q := make([]string, len(ids))
	for i, id := range ids {
		q[i] = quote(id.String())
	}
	return "id NOT IN [" + strings.Join(q, ", ") + "]"
}

// facetAttributes are the attributes whose distribution gives each group's facet.
var facetAttributes = [numGroups][]string{
	groupGenre:    {"categories"},
	groupAuthor:   {"author_ids"},
	groupPrice:    {"price_bucket", "price_cents"}, // price_cents for facetStats (min, max)
	groupRating:   {"rating_floor"},
	groupStock:    {"in_stock"},
	groupLanguage: {"language"},
}
