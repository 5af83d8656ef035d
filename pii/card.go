package pii

import (
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// LooksLikeCardNumber reports whether s, as a whole, is a payment card number (PAN): 13
// to 19 digits, possibly grouped by separators (see ContainsCardNumber), with a first
// digit that card networks issue (1 UATP, 15 digits only; 2 and 5 Mastercard, 3 Amex/JCB/Diners, 4 Visa,
// 6 Discover/UnionPay/Maestro) and a valid Luhn check digit. The issuer-digit rule keeps
// ISBN-13s (978/979...), which pass Luhn one time in ten, from being mistaken for cards
// in a bookstore.
//
// Card numbers must never reach our database or logs (PCI DSS scope): callers reject
// such input with a generic message and must not log the value.
func LooksLikeCardNumber(s string) bool {
	seqs := digitSequences(s)
	if len(seqs) != 1 || !seqs[0].whole {
		return false
	}
	var all []byte
	for _, g := range seqs[0].groups {
		all = append(all, g...)
	}
	return isPAN(all)
}

// ContainsCardNumber reports whether free text (an address line, a name, a search) holds
// a card number. The text is NFKC-normalised first, so full-width digits and non-breaking
// or other Unicode spaces count as their ASCII forms. Digits form groups; groups joined by
// up to three separator characters (spaces, '.', '-', '/', '_') form a sequence; any run
// of whole consecutive groups of a sequence (each of 3+ digits when there are several)
// holding 13 to 19 digits that passes
// LooksLikeCardNumber's rules is a card. So "4111.1111.1111.1111", "4111 - 1111 - ..." and
// "Flat 1 4111 1111 1111 1111" are caught, while two ISBNs side by side (two 13-digit
// groups starting with 9) or a long order number (one group of 20+ digits) are not.
func ContainsCardNumber(text string) bool {
	for _, seq := range digitSequences(text) {
		gs := seq.groups
		for i := range gs {
			var span []byte
			for j := i; j < len(gs); j++ {
				if j > i && (len(gs[i]) < minGroup || len(gs[j]) < minGroup) {
					break // card groupings (4-4-4-4, 4-6-5, 4-4-4-4-3) have no short groups
				}
				span = append(span, gs[j]...)
				if len(span) > 19 {
					break
				}
				if isPAN(span) {
					return true
				}
			}
		}
	}
	return false
}

type digitSeq struct {
	groups [][]byte // digit values 0..9
	whole  bool     // the sequence is all of the text (nothing but digits and separators)
}

const (
	maxSeparatorRun = 3
	// minGroup is the shortest digit group of a grouped card number: a run of short
	// numbers ("1 2 3 ... 20") is a list, not a card.
	minGroup = 3
)

func isSeparator(r rune) bool {
	return unicode.IsSpace(r) || r == '.' || r == '-' || r == '/' || r == '_'
}

// digitSequences splits NFKC-normalised text into sequences of digit groups.
func digitSequences(text string) []digitSeq {
	s := norm.NFKC.String(text)
	var seqs []digitSeq
	var cur digitSeq
	var group []byte
	sepRun, other := 0, false
	end := func() {
		if len(group) > 0 {
			cur.groups = append(cur.groups, group)
			group = nil
		}
		if len(cur.groups) > 0 {
			seqs = append(seqs, cur)
		}
		cur = digitSeq{}
	}
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			group = append(group, byte(r-'0'))
			sepRun = 0
		case isSeparator(r) && len(group) > 0 && sepRun < maxSeparatorRun:
			cur.groups = append(cur.groups, group)
			group = nil
			sepRun = 1
		case isSeparator(r) && sepRun > 0 && sepRun < maxSeparatorRun:
			sepRun++
		case isSeparator(r) && len(cur.groups) == 0:
			// leading separators before any digit
		default:
			if !isSeparator(r) {
				other = true
			}
			end()
			sepRun = 0
		}
	}
	end()
	if len(seqs) == 1 && !other {
		seqs[0].whole = true
	}
	return seqs
}

func isPAN(d []byte) bool {
	if len(d) < 13 || len(d) > 19 || d[0] < 1 || d[0] > 6 {
		return false
	}
	if d[0] == 1 && len(d) != 15 {
		// UATP numbers, the only cards issued with a first digit 1, are 15 digits. A 13-,
		// 16- or 19-digit run starting with 1 is a Unix time in milliseconds, microseconds
		// or nanoseconds (until 2033, 2286 and 2286): a client's "cart-1796227229491"
		// idempotency key passed Luhn one time in ten and was refused as a card.
		return false
	}
	return luhn(d)
}

func luhn(d []byte) bool {
	sum := 0
	double := false
	for i := len(d) - 1; i >= 0; i-- {
		v := int(d[i])
		if double {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
		double = !double
	}
	return sum%10 == 0
}
