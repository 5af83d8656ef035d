package catalog

import (
	"fmt"
	"strconv"
	"strings"
)

// NormalizeISBN checks an ISBN-10 or ISBN-13 and returns it as 13 ASCII digits, the form
// the catalog stores and looks books up by. Dashes and spaces anywhere are ignored; an
// ISBN-10 may end in X or x. An ISBN-10 is converted to its ISBN-13 (prefix 978 and a
// recomputed check digit), so both spellings of a book find the same record. An ISBN-13
// must start with 978 or 979 (other EAN-13 codes are not books).
//
// The error's message is safe to show to a client and quotes the input, shortened if
// long: "ISBN 0-306-40615-3: bad check digit, want 2".
func NormalizeISBN(s string) (string, error) {
	var d [13]byte
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '-' || c == ' ':
			continue
		case c >= '0' && c <= '9', c == 'X' || c == 'x':
			if n == len(d) {
				return "", isbnErrorf(s, "too many digits, want 10 or 13")
			}
			d[n] = c
			n++
		default:
			return "", isbnErrorf(s, "invalid character %q", rune(c))
		}
	}
	if n == 0 {
		return "", isbnErrorf(s, "empty")
	}
	for i := 0; i < n; i++ {
		if (d[i] == 'X' || d[i] == 'x') && !(n == 10 && i == 9) {
			return "", isbnErrorf(s, "X is allowed only as the check digit of an ISBN-10")
		}
	}
	switch n {
	case 10:
		if want := isbn10CheckDigit(d[:9]); d[9] != want && !(want == 'X' && d[9] == 'x') {
			return "", isbnErrorf(s, "bad check digit, want %c", want)
		}
		out := make([]byte, 13)
		copy(out, "978")
		copy(out[3:], d[:9])
		out[12] = ISBN13CheckDigit(string(out[:12]))
		return string(out), nil
	case 13:
		if p := string(d[:3]); p != "978" && p != "979" {
			return "", isbnErrorf(s, "an ISBN-13 starts with 978 or 979")
		}
		if want := ISBN13CheckDigit(string(d[:12])); d[12] != want {
			return "", isbnErrorf(s, "bad check digit, want %c", want)
		}
		return string(d[:13]), nil
	default:
		return "", isbnErrorf(s, "%d digits, want 10 or 13", n)
	}
}

// ISBN13CheckDigit returns the check digit ('0'..'9') that completes first12, which must be
// 12 ASCII digits: weights alternate 1 and 3, and the digit brings the sum to a multiple
// of 10. It panics on any other input, which is a programming error.
func ISBN13CheckDigit(first12 string) byte {
	if len(first12) != 12 {
		panic("catalog.ISBN13CheckDigit: need 12 digits, got " + strconv.Quote(first12))
	}
	sum := 0
	for i := 0; i < 12; i++ {
		c := first12[i]
		if c < '0' || c > '9' {
			panic("catalog.ISBN13CheckDigit: need 12 digits, got " + strconv.Quote(first12))
		}
		w := 1
		if i%2 == 1 {
			w = 3
		}
		sum += w * int(c-'0')
	}
	return byte('0' + (10-sum%10)%10)
}

// isbn10CheckDigit returns the check digit ('0'..'9' or 'X') of nine ASCII digits: weights
// 10 down to 2, and the digit brings the sum to a multiple of 11.
func isbn10CheckDigit(first9 []byte) byte {
	sum := 0
	for i, c := range first9 {
		sum += (10 - i) * int(c-'0')
	}
	switch v := (11 - sum%11) % 11; v {
	case 10:
		return 'X'
	default:
		return byte('0' + v)
	}
}

func isbnErrorf(input, format string, args ...any) error {
	return fmt.Errorf("ISBN %s: %s", showISBN(input), fmt.Sprintf(format, args...))
}

// showISBN returns the input as typed when it looks like an ISBN, quoted otherwise, and
// cut short either way, so that an error message stays one short, printable line.
func showISBN(s string) string {
	const max = 32
	plain := s != "" && strings.TrimSpace(s) == s
	for i := 0; i < len(s) && plain; i++ {
		c := s[i]
		plain = c >= '0' && c <= '9' || c == '-' || c == ' ' || c == 'X' || c == 'x'
	}
	if plain && len(s) <= max {
		return s
	}
	return quoteShort(s, max)
}

// quoteShort quotes s as a Go string, keeping at most max bytes of it (never splitting a
// character) and marking a cut with "...".
func quoteShort(s string, max int) string {
	if len(s) <= max {
		return strconv.Quote(s)
	}
	cut := max
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "..."
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }
