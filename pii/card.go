package pii

// LooksLikeCardNumber reports whether s is a payment card number (PAN): 13 to 19 digits
// once spaces and dashes are removed, a first digit that card networks issue (1 UATP,
// 2 and 5 Mastercard, 3 Amex/JCB/Diners, 4 Visa, 6 Discover/UnionPay/Maestro) and a
// valid Luhn check digit. The issuer-digit rule keeps ISBN-13s (978/979...), which pass
// Luhn one time in ten, from being mistaken for cards in a bookstore.
//
// Card numbers must never reach our database or logs (PCI DSS scope): callers reject
// such input with a generic message and must not log the value.
func LooksLikeCardNumber(s string) bool {
	var digits [19]byte
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			if n == len(digits) {
				return false
			}
			digits[n] = c - '0'
			n++
		case c == ' ' || c == '-':
		default:
			return false
		}
	}
	return isPAN(digits[:n])
}

// ContainsCardNumber reports whether free text (an address line, a name, a note) holds a
// card number: a run of 13 to 19 digits, possibly grouped by single spaces or dashes,
// that LooksLikeCardNumber would accept. Longer digit runs (order numbers, phone numbers
// with extensions) are not cards.
func ContainsCardNumber(text string) bool {
	var digits []byte
	flush := func() bool {
		ok := isPAN(digits)
		digits = digits[:0]
		return ok
	}
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case c >= '0' && c <= '9':
			digits = append(digits, c-'0')
		case (c == ' ' || c == '-') && len(digits) > 0 && i+1 < len(text) && text[i+1] >= '0' && text[i+1] <= '9':
			// a single separator inside a digit group
		default:
			if flush() {
				return true
			}
		}
	}
	return flush()
}

func isPAN(d []byte) bool {
	if len(d) < 13 || len(d) > 19 || d[0] < 1 || d[0] > 6 {
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
