package catalog

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSlug(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"two words", "Science Fiction", "science-fiction"},
		{"apostrophe", "Children's Books", "childrens-books"},
		{"typographic apostrophe", "Children’s Books", "childrens-books"},
		{"ampersand and hyphen", "Sci-Fi & Fantasy", "sci-fi-fantasy"},
		{"genre with ampersand", "Science Fiction & Fantasy", "science-fiction-fantasy"},
		{"accents", "Éditions Spéciales", "editions-speciales"},
		{"more accents", "Crème brûlée à la façon", "creme-brulee-a-la-facon"},
		{"letters NFD keeps", "Straße Æsop Øre Łódź", "strasse-aesop-ore-lodz"},
		{"collapse and trim", "  --Hello,   World!!  ", "hello-world"},
		{"digits", "Top 100 Books of 2024", "top-100-books-of-2024"},
		{"non-Latin letters stay", "Русская проза", "русская-проза"},
		{"nothing left", "!!! ---", ""},
		{"empty", "", ""},
		{"long cut at a word", strings.Repeat("word ", 30), strings.TrimSuffix(strings.Repeat("word-", 16), "-")},
		{"long single word", strings.Repeat("a", 100), strings.Repeat("a", 80)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Slug(c.in); got != c.want {
				t.Fatalf("Slug(%q) = %q, want %q", c.in, got, c.want)
			}
		})
	}
}

func TestSlugBounds(t *testing.T) {
	for _, in := range []string{strings.Repeat("é", 100), strings.Repeat("ж", 100), strings.Repeat("ab ", 40) + strings.Repeat("ж", 50)} {
		s := Slug(in)
		if len(s) > MaxSlugLen || !utf8.ValidString(s) || strings.HasPrefix(s, "-") || strings.HasSuffix(s, "-") || strings.Contains(s, "--") {
			t.Errorf("Slug(%q) = %q (%d bytes): want a valid slug of at most %d bytes", in, s, len(s), MaxSlugLen)
		}
	}
}
