package words

import (
	"slices"
	"strings"
	"testing"
)

func TestTokenize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"The Lighthouse Keeper's Daughter", []string{"the", "lighthouse", "keeper", "s", "daughter"}},
		{"Müller & Straße", []string{"muller", "strasse"}},
		{"Saint-Exupéry", []string{"saint", "exupery"}},
		{"L'Été des ŒUFS", []string{"l", "ete", "des", "oeufs"}},
		{"Neo-Osaka 2049, vol.3", []string{"neo", "osaka", "2049", "vol", "3"}},
		{"  \t\n", nil},
		{"\xff\xfeabc\x00def", []string{"abc", "def"}},
		{"日本語 タイトル", []string{"日本語", "タイトル"}},
		{"Ærøskøbing Łódź", []string{"aeroskobing", "lodz"}},
		{"naïve café", []string{"naive", "cafe"}},
		{"ＨＯＢＢＩＴ ｈｏｂ", []string{"hobbit", "hob"}},       // full-width
		{"ﬁre ﬂy", []string{"fire", "fly"}},             // ligatures
		{"ﾀｲﾄﾙ", []string{"タイトル"}},                      // half-width katakana
		{"Толстой Фёдор", []string{"толстои", "федор"}}, // Cyrillic: marks go too (й, ё)
	} {
		var got []string
		Tokenize(tc.in, func(term []byte, start, end int) {
			got = append(got, string(term))
			if start < 0 || end > len(tc.in) || start >= end {
				t.Errorf("%q: bad range %d..%d", tc.in, start, end)
			}
		})
		if !slices.Equal(got, tc.want) {
			t.Errorf("Tokenize(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	long := strings.Repeat("é", 100)
	Tokenize(long, func(term []byte, _, _ int) {
		if len(term) > MaxTermLen {
			t.Errorf("term of %d bytes", len(term))
		}
	})
	if got := Normalize("  The  Silver Crown, Book 2 "); got != "the silver crown book 2" {
		t.Errorf("Normalize = %q", got)
	}
}

func TestTokenizeRanges(t *testing.T) {
	in := "Élise’s «Voyage» d'été"
	var parts []string
	Tokenize(in, func(_ []byte, start, end int) { parts = append(parts, in[start:end]) })
	if want := []string{"Élise", "s", "Voyage", "d", "été"}; !slices.Equal(parts, want) {
		t.Errorf("ranges cover %q, want %q", parts, want)
	}
}
