package resolvers

import (
	"errors"
	"testing"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/search"
)

// TestSearchWindow: the 10,000 cap is honest — totalCount says what can be reached,
// the last reachable page ends there with hasNextPage false, and no page reaches past.
func TestSearchWindow(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		offset, first, total int
		limit, reachable     int
		next                 bool
	}{
		{"first page", 0, 20, 95, 20, 95, true},
		{"last page", 80, 20, 95, 15, 95, false},
		{"exactly the end", 75, 20, 95, 20, 95, false},
		{"past the end", 95, 20, 95, 0, 95, false},
		{"before the cap", 9_900, 100, 10_011, 100, 10_000, false},
		{"the cap itself", 10_000, 100, 10_011, 0, 10_000, false},
		{"across the cap", 9_950, 100, 20_000, 50, 10_000, false},
		{"first 0", 0, 0, 10, 0, 10, true},
	} {
		limit, reachable, next := searchWindow(tc.offset, tc.first, tc.total)
		if limit != tc.limit || reachable != tc.reachable || next != tc.next {
			t.Errorf("%s: searchWindow(%d, %d, %d) = %d, %d, %v; want %d, %d, %v", tc.name,
				tc.offset, tc.first, tc.total, limit, reachable, next, tc.limit, tc.reachable, tc.next)
		}
	}
}

// TestSearchCursorBelongsToItsSearch: a cursor names its search; another text, filter
// or sort refuses it, while the same search in another spelling (filter values in
// another order or case) accepts it.
func TestSearchCursorBelongsToItsSearch(t *testing.T) {
	base := search.Query{Text: "tolkien", Filter: search.Filter{Categories: []string{"fantasy", "classics"}}}
	c := searchCursor(40, searchFingerprint(base))
	same := base
	same.Filter.Categories = []string{"Classics", "fantasy"}
	same.Limit, same.Offset, same.SkipFacets = 5, 99, true // the page is not the search
	if n, err := parseSearchCursor(&c, searchFingerprint(same)); err != nil || n != 40 {
		t.Errorf("same search: %d, %v", n, err)
	}
	inStock := true
	for name, q := range map[string]search.Query{
		"text":   {Text: "tolkie", Filter: base.Filter},
		"filter": {Text: base.Text, Filter: search.Filter{Categories: base.Filter.Categories, InStock: &inStock}},
		"sort":   {Text: base.Text, Filter: base.Filter, Sort: search.SortPriceAsc},
	} {
		_, err := parseSearchCursor(&c, searchFingerprint(q))
		var be *bookstore.Error
		if !errors.As(err, &be) || be.Code != bookstore.CodeBadUserInput || be.Field != "after" {
			t.Errorf("another %s: %v, want BAD_USER_INPUT on after", name, err)
		}
	}
	beyond := searchCursor(10_001, searchFingerprint(base))
	if _, err := parseSearchCursor(&beyond, searchFingerprint(base)); err == nil {
		t.Errorf("a cursor beyond the cap was accepted")
	}
}
