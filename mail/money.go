package mail

import (
	"strconv"
	"strings"

	"golang.org/x/text/currency"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// en formats currency symbols. The shop writes its emails in English; a localized shop
// would pass the customer's language here and to the templates.
var en = message.NewPrinter(language.English)

// Money formats an amount in a currency's minor units ("cents": the unit the database
// stores, so 0-decimal currencies such as JPY count whole yen) for an English reader:
// "$29.98", "€12.50", "£1,000.00", "¥1,230", "-$5.00". x/text (CLDR) gives each currency's
// symbol and number of decimals; its own formatter is not used because it puts a space
// after the symbol ("$ 29.98") and works on floats. A currency whose symbol is its code
// (CHF), and one x/text does not know, is written after the amount: "12.50 CHF".
func Money(cents int64, code string) string {
	code = strings.ToUpper(code)
	digits, sym := 2, ""
	if u, err := currency.ParseISO(code); err == nil {
		digits, _ = currency.Standard.Rounding(u)
		sym = en.Sprint(currency.Symbol(u))
	}
	neg := cents < 0
	// Negate in uint64, so the smallest int64 does not overflow.
	n := uint64(cents)
	if neg {
		n = -n
	}
	num := group(strconv.FormatUint(n/pow10(digits), 10))
	if digits > 0 {
		frac := strconv.FormatUint(n%pow10(digits), 10)
		num += "." + strings.Repeat("0", digits-len(frac)) + frac
	}
	sign := ""
	if neg {
		sign = "-"
	}
	if sym == "" || sym == code {
		return sign + num + " " + code
	}
	return sign + sym + num
}

func pow10(n int) uint64 {
	p := uint64(1)
	for range n {
		p *= 10
	}
	return p
}

// group inserts thousands separators into a string of digits.
func group(s string) string {
	if len(s) <= 3 {
		return s
	}
	var b strings.Builder
	head := len(s) % 3
	if head > 0 {
		b.WriteString(s[:head])
	}
	for i := head; i < len(s); i += 3 {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s[i : i+3])
	}
	return b.String()
}
