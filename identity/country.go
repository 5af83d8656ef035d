package identity

import "golang.org/x/text/language"

// isCountry reports whether code is an ISO 3166-1 alpha-2 code assigned to a country or
// territory, from the region data of golang.org/x/text (CLDR). Reserved and private-use
// codes are not countries: UK, EU, UN, EZ, AC, IC... (ISO's exceptional reservations,
// which CLDR knows as regions but which have no ISO 3166-1 numeric code or alpha-3 code),
// XX, ZZ, AA, QM-QZ, XK (user-assigned); nor are withdrawn ones.
func isCountry(code string) bool {
	if len(code) != 2 {
		return false
	}
	if withdrawn[code] {
		return false
	}
	r, err := language.ParseRegion(code)
	return err == nil && r.String() == code && r.IsCountry() && !r.IsPrivateUse() &&
		r.M49() != 0 && r.ISO3() != "ZZZ" && r.Canonicalize() == r
}

// withdrawn are the alpha-2 codes ISO 3166-3 deleted and never reassigned: CLDR still
// knows some of them as regions (YU, SU, NT, AN, CS pass every test above), but no
// address is in them today.
var withdrawn = map[string]bool{
	"AN": true, "BU": true, "CS": true, "DD": true, "DY": true, "FQ": true, "HV": true,
	"JT": true, "MI": true, "NH": true, "NQ": true, "NT": true, "PC": true, "PU": true,
	"PZ": true, "RH": true, "SU": true, "TP": true, "VD": true, "WK": true, "YD": true,
	"YU": true, "ZR": true,
}
