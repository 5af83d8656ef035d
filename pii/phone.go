package pii

import (
	"strings"

	"github.com/nyaruka/phonenumbers"
	"golang.org/x/text/unicode/norm"
)

// maxPhoneBytes bounds what ParsePhone looks at: E.164 has at most 15 digits, and the
// usual punctuation at most doubles that.
const maxPhoneBytes = 32

// ParsePhone reports whether s is a valid international phone number: a leading "+",
// a country calling code and a national number that the numbering plan of that country
// admits (Google's libphonenumber metadata, through github.com/nyaruka/phonenumbers),
// written with digits, spaces and - . ( ) only. It returns the number in E.164 form.
//
// A valid phone number is not a card number, whatever Luhn says: about one 13-15 digit
// number in ten that starts like a card passes Luhn, so a Brazilian or German mobile
// would otherwise be refused as a PAN. A card number does not parse: it has no "+", and
// with one it matches no country's plan.
func ParsePhone(s string) (string, bool) {
	// NFKC first, so that a number typed with no-break or narrow spaces (U+00A0,
	// U+202F, as phones and word processors insert) parses; a space takes at most 3
	// bytes, which bounds the input normalised.
	if len(s) > 3*maxPhoneBytes {
		return "", false
	}
	s = NormalizePhone(s)
	if len(s) > maxPhoneBytes || !strings.HasPrefix(s, "+") {
		return "", false
	}
	for _, r := range s[1:] {
		switch {
		case r >= '0' && r <= '9', r == ' ', r == '-', r == '.', r == '(', r == ')':
		default:
			return "", false
		}
	}
	n, err := phonenumbers.Parse(s, "ZZ")
	if err != nil || !phonenumbers.IsValidNumber(n) {
		return "", false
	}
	return phonenumbers.Format(n, phonenumbers.E164), true
}

// NormalizePhone is the form a phone number is parsed and stored in: NFKC (no-break
// and other compatibility spaces become plain ones), trimmed.
func NormalizePhone(s string) string { return strings.TrimSpace(norm.NFKC.String(s)) }
