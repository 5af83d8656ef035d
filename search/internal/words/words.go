// Package words is the text analysis the search engines share, so that indexing,
// query parsing, suggestions and highlighting agree on what a word is:
//
//   - a word is a run of letters, digits and combining marks; anything else separates
//     ("Neo-Osaka" -> "neo", "osaka"), apostrophes too, as in Meilisearch ("L'Ombre" ->
//     "l", "ombre"; "Keeper's" -> "keeper", "s": "keepers" still finds it by typo
//     tolerance);
//   - words are put in compatibility form (NFKD: full-width "ＨＯＢＢＩＴ" is "hobbit",
//     the ligature "ﬁ" is "fi"), as Meilisearch's tokenizer does;
//   - words are lower-cased and stripped of accents, and a few letters without an ASCII
//     base are spelled out ("Müller" -> "muller", "Straße" -> "strasse"), like
//     catalog.Slug;
//   - there is no stemming and there are no stop words (as in Meilisearch): plurals are
//     reached by prefix on the last word and by typo tolerance elsewhere.
package words

import (
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// MaxTermLen bounds a term, in bytes; longer words are cut (the same way at index and
// query time).
const MaxTermLen = 64

// Tokenize calls fn with each word of s: its normalised term (valid only during the
// call) and its byte range in s.
func Tokenize(s string, fn func(term []byte, start, end int)) {
	var buf [MaxTermLen * 2]byte
	i := 0
	for i < len(s) {
		// Skip separators.
		if c := s[i]; c < utf8.RuneSelf {
			if asciiWord[c] == 0 {
				i++
				continue
			}
		} else if r, n := utf8.DecodeRuneInString(s[i:]); !isWordRune(r) {
			i += n
			continue
		}
		start, ascii := i, true
		end := i
		for i < len(s) {
			c := s[i]
			if c < utf8.RuneSelf {
				if asciiWord[c] != 0 {
					i++
					end = i
					continue
				}
				break
			}
			r, n := utf8.DecodeRuneInString(s[i:])
			if isWordRune(r) {
				ascii = false
				i += n
				end = i
				continue
			}
			break
		}
		var term []byte
		if ascii {
			term = lowerASCII(buf[:0], s[start:end])
		} else {
			term = foldWord(buf[:0], s[start:end])
		}
		if len(term) > MaxTermLen {
			term = cutUTF8(term, MaxTermLen)
		}
		if len(term) > 0 {
			fn(term, start, end)
		}
	}
}

// asciiWord[c] is 1 for ASCII letters and digits.
var asciiWord = func() (t [utf8.RuneSelf]uint8) {
	for c := range t {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			t[c] = 1
		}
	}
	return t
}()

func isWordRune(r rune) bool {
	if r < utf8.RuneSelf {
		return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
	}
	return r != utf8.RuneError && (unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.In(r, unicode.Mn, unicode.Mc))
}

func lowerASCII(dst []byte, w string) []byte {
	for i := 0; i < len(w); i++ {
		c := w[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// foldWord lower-cases w, strips accents and spells out letters without an ASCII base,
// after compatibility decomposition.
func foldWord(dst []byte, w string) []byte {
	for _, r := range norm.NFKD.String(w) {
		switch {
		case unicode.Is(unicode.Mn, r), unicode.Is(unicode.Mc, r):
		default:
			if s, ok := letterFold[r]; ok {
				dst = append(dst, s...)
			} else {
				dst = utf8.AppendRune(dst, unicode.ToLower(r))
			}
		}
	}
	return dst
}

// letterFold spells out letters that NFD does not split into a base letter and an accent
// (the same table as catalog.Slug's).
var letterFold = map[rune]string{
	'ß': "ss", 'ẞ': "ss", 'æ': "ae", 'Æ': "ae", 'œ': "oe", 'Œ': "oe", 'ø': "o", 'Ø': "o",
	'ł': "l", 'Ł': "l", 'đ': "d", 'Đ': "d", 'ð': "d", 'Ð': "d", 'þ': "th", 'Þ': "th",
	'ı': "i", 'ħ': "h", 'Ħ': "h",
}

func cutUTF8(b []byte, n int) []byte {
	if len(b) <= n {
		return b
	}
	for n > 0 && !utf8.RuneStart(b[n]) {
		n--
	}
	return b[:n]
}

// Normalize returns the words of s normalised and joined by single spaces.
func Normalize(s string) string {
	var b []byte
	Tokenize(s, func(term []byte, _, _ int) {
		if len(b) > 0 {
			b = append(b, ' ')
		}
		b = append(b, term...)
	})
	return string(b)
}
