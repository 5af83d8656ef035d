package catalog

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// MaxSlugLen is the longest slug Slug returns, in bytes.
const MaxSlugLen = 80

// Slug derives the URL name of a category from its display name: "Science Fiction" ->
// "science-fiction", "Children's Books" -> "childrens-books", "Sci-Fi & Fantasy" ->
// "sci-fi-fantasy", "Éditions Spéciales" -> "editions-speciales". Letters are lower-cased
// and stripped of accents (ß, æ, ø and a few others are spelled out); apostrophes vanish;
// any other run of non-letters, non-digits becomes one dash; there is no leading or
// trailing dash. Letters without an ASCII spelling (Cyrillic, CJK, ...) are kept, so such
// names still get distinct slugs.
//
// The result is at most MaxSlugLen bytes, cut at a word boundary when there is one. It is
// "" when name has no letter or digit: callers that need a slug must reject such names
// (the CSV reader does).
func Slug(name string) string {
	var b strings.Builder
	b.Grow(len(name))
	dash := false // a separator is pending
	for _, r := range norm.NFD.String(name) {
		switch {
		case r == '\'' || r == '\u2019' || r == '`' || r == '\u00b4':
			// Apostrophes join: "children's" -> "childrens".
		case unicode.Is(unicode.Mn, r):
			// Combining accents left by NFD: "é" -> "e".
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			if s, ok := slugFold[r]; ok {
				b.WriteString(s)
			} else {
				b.WriteRune(unicode.ToLower(r))
			}
		default:
			dash = true
		}
	}
	return truncateSlug(b.String())
}

// slugFold spells out letters that NFD does not decompose into a base letter and an
// accent.
var slugFold = map[rune]string{
	'ß': "ss", 'ẞ': "ss", 'æ': "ae", 'Æ': "ae", 'œ': "oe", 'Œ': "oe", 'ø': "o", 'Ø': "o",
	'ł': "l", 'Ł': "l", 'đ': "d", 'Đ': "d", 'ð': "d", 'Ð': "d", 'þ': "th", 'Þ': "th",
	'ı': "i", 'ħ': "h", 'Ħ': "h",
}

func truncateSlug(s string) string {
	if len(s) <= MaxSlugLen {
		return s
	}
	cut := MaxSlugLen
	if i := strings.LastIndexByte(s[:cut+1], '-'); i >= MaxSlugLen/2 {
		cut = i // ends a word: s[i] is the dash after it
	} else {
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
	}
	return strings.TrimRight(s[:cut], "-")
}
