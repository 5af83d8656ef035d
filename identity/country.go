package identity

import "golang.org/x/text/language"

// isCountry reports whether code is an ISO 3166-1 alpha-2 code assigned to a country or
// territory, from the region data of golang.org/x/text (CLDR). Reserved and private-use
// codes are not countries: UK, EU, UN, EZ, AC, IC... (ISO's exceptional reservations,
// which CLDR knows as regions but which have no ISO 3166-1 numeric code or alpha-3 code),
// XX, ZZ, AA, QM-QZ, XK (user-assigned).
func isCountry(code string) bool {
	if len(code) != 2 {
		return false
	}
	r, err := language.ParseRegion(code)
	return err == nil && r.String() == code && r.IsCountry() && !r.IsPrivateUse() &&
		r.M49() != 0 && r.ISO3() != "ZZZ" && r.Canonicalize() == r
}
