package search

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/uuid"
)

func TestNormalized(t *testing.T) {
	a, b := uuid.New(), uuid.New()
	q, err := Query{
		Text:   strings.Repeat("é", 300), // 600 bytes
		Limit:  -1,
		Offset: -7,
		Sort:   Sort(42),
		Filter: Filter{Categories: []string{" Fantasy", "fantasy", "", "ROMANCE"}, AuthorIDs: []uuid.UUID{b, a, b}, Language: " EN "},
	}.Normalized()
	if err != nil {
		t.Fatal(err)
	}
	if q.Text != strings.Repeat("é", MaxQueryLen) {
		t.Errorf("text cut to %d characters, want %d", utf8.RuneCountInString(q.Text), MaxQueryLen)
	}
	if s := strings.Repeat("ab", 200); Truncate(s) != s[:MaxQueryLen] || Truncate("hobbit") != "hobbit" {
		t.Errorf("Truncate of ASCII text")
	}
	if q.Limit != DefaultLimit || q.Offset != 0 || q.Sort != SortRelevance {
		t.Errorf("bounds: %+v", q)
	}
	if !slices.Equal(q.Filter.Categories, []string{"fantasy", "romance"}) || q.Filter.Language != "en" || len(q.Filter.AuthorIDs) != 2 {
		t.Errorf("filter: %+v", q.Filter)
	}
	if q, _ := (Query{Limit: 1 << 40, Offset: math.MaxInt}).Normalized(); q.Limit != MaxLimit || q.Offset != MaxOffset {
		t.Errorf("caps: %+v", q)
	}
	nan := math.NaN()
	if _, err := (Query{Filter: Filter{MinRating: &nan}}).Normalized(); !errors.Is(err, ErrInvalidQuery) {
		t.Errorf("NaN rating: %v", err)
	}
}

func TestPriceBucketOf(t *testing.T) {
	for cents, want := range map[int64]int{-5: 0, 0: 0, 999: 0, 1000: 1, 1999: 1, 2000: 2, 2999: 2, 3000: 3, 4999: 3, 5000: 4, 1 << 40: 4} {
		if got := PriceBucketOf(cents); got != want {
			t.Errorf("PriceBucketOf(%d) = %d, want %d", cents, got, want)
		}
	}
}

func TestMergeSuggestions(t *testing.T) {
	mk := func(kind SuggestionKind, texts ...string) []Suggestion {
		var out []Suggestion
		for _, s := range texts {
			out = append(out, Suggestion{Kind: kind, Text: s})
		}
		return out
	}
	texts := func(s []Suggestion) string {
		var out []string
		for _, x := range s {
			out = append(out, x.Text)
		}
		return strings.Join(out, ",")
	}
	cats := mk(SuggestCategory, "c1", "c2", "c3")
	authors := mk(SuggestAuthor, "a1", "A1", "a2", "a3")
	titles := mk(SuggestTitle, "t1", "t2", "t3", "t4", "t5", "t6", "t7", "t8")
	for _, tc := range []struct {
		n    int
		c, a []Suggestion
		t    []Suggestion
		want string
	}{
		{8, cats, authors, titles, "c1,c2,a1,a2,t1,t2,t3,t4"},
		{1, cats, authors, titles, "c1"},
		{3, cats, authors, titles, "c1,a1,t1"},
		{8, cats, authors, nil, "c1,c2,c3,a1,a2,a3"},
		{8, nil, nil, titles, "t1,t2,t3,t4,t5,t6,t7,t8"},
		{4, cats, nil, mk(SuggestTitle, "t1"), "c1,c2,c3,t1"},
		{0, cats, authors, titles, ""},
		{-1, cats, authors, titles, ""},
	} {
		if got := texts(MergeSuggestions(tc.c, tc.a, tc.t, tc.n)); got != tc.want {
			t.Errorf("n=%d: %s, want %s", tc.n, got, tc.want)
		}
	}
	if SuggestLimit(0) != 10 || SuggestLimit(1000) != MaxSuggestions || SuggestLimit(3) != 3 {
		t.Error("SuggestLimit")
	}
}

func TestSortString(t *testing.T) {
	if SortNewest.String() != "NEWEST" || Sort(9).String() != "Sort(9)" || Sort(9).Valid() {
		t.Error("Sort.String")
	}
}
