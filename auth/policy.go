package auth

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/shopfront/bookstore"
)

// PasswordPolicy is what a new password must satisfy, after NIST SP 800-63B (rev. 4,
// §3.1.1.2): a minimum length (15 characters when the password is the only factor, as
// it is here), a generous maximum, every printable character and space allowed, no
// composition rules ("one digit, one symbol") and no periodic expiry, but a check
// against commonly used passwords and words from the context (the service, the email).
type PasswordPolicy struct {
	MinLength int // in characters (Unicode code points) after NFC
	MaxLength int
}

// DefaultPasswordPolicy: 15..128 characters.
func DefaultPasswordPolicy() PasswordPolicy { return PasswordPolicy{MinLength: 15, MaxLength: 128} }

// NormalizePassword applies Unicode NFC, as 800-63B asks, so that the same password typed
// on two keyboards (composed or decomposed accents) hashes alike. Hash and verify the
// normalised form.
func NormalizePassword(password string) string { return norm.NFC.String(password) }

// Check returns a BAD_USER_INPUT error on field "password" when password (already
// normalised) breaks the policy. context holds words the password must not be built on:
// the customer's email, name and the like.
func (p PasswordPolicy) Check(password string, context ...string) error {
	invalid := func(msg string) error { return bookstore.InvalidField("password", "%s", msg) }
	if !utf8.ValidString(password) {
		return invalid("must be valid text")
	}
	n := utf8.RuneCountInString(password)
	if n < p.MinLength {
		return bookstore.InvalidField("password", "must be at least %d characters", p.MinLength)
	}
	if n > p.MaxLength {
		return bookstore.InvalidField("password", "must be at most %d characters", p.MaxLength)
	}
	for _, r := range password {
		if unicode.IsControl(r) {
			return invalid("must not contain control characters")
		}
	}
	folded := strings.ToLower(password)
	if commonPasswords[folded] || isRepetitive(folded) {
		return invalid("is too common or too easy to guess; a few unrelated words make a strong password")
	}
	for _, w := range contextWords(context) {
		// Built on a context word: what is left once the word is removed is short.
		if rest := strings.ReplaceAll(folded, w, ""); utf8.RuneCountInString(rest) < 8 {
			return invalid("must not be based on your email, your name or the shop's name")
		}
	}
	return nil
}

// contextWords are the lower-cased words a password must not be built on: the service's
// names and each context value with its parts (an email's local part and domain name).
func contextWords(context []string) []string {
	words := []string{"bookstore", "shopfront", "password"}
	for _, c := range context {
		c = strings.ToLower(strings.TrimSpace(c))
		if c == "" {
			continue
		}
		words = append(words, c)
		if local, domain, ok := strings.Cut(c, "@"); ok {
			words = append(words, local, domain)
			if name, _, ok := strings.Cut(domain, "."); ok {
				words = append(words, name)
			}
		}
		words = append(words, strings.Fields(c)...)
	}
	out := words[:0]
	for _, w := range words {
		if utf8.RuneCountInString(w) >= 4 { // shorter words occur by chance
			out = append(out, w)
		}
	}
	return out
}

// isRepetitive catches passwords that are one short pattern repeated ("aaaaaaaaaaaaaaa",
// "abcabcabcabcabc") or a run of consecutive characters ("123456789012345",
// "abcdefghijklmno"): long enough, yet among the first an attacker tries.
func isRepetitive(s string) bool {
	r := []rune(s)
	for period := 1; period <= 4 && period < len(r); period++ {
		repeated := true
		for i := period; i < len(r); i++ {
			if r[i] != r[i-period] {
				repeated = false
				break
			}
		}
		if repeated {
			return true
		}
	}
	// Runs of ascending or descending neighbours ("0123456789" wraps to "0").
	step := func(a, b rune) rune {
		if a >= '0' && a <= '9' && b >= '0' && b <= '9' {
			if d := ((b-a)%10 + 10) % 10; d != 9 {
				return d
			}
			return -1
		}
		return b - a
	}
	up, down := 0, 0
	for i := 1; i < len(r); i++ {
		switch step(r[i-1], r[i]) {
		case 1:
			up++
		case -1:
			down++
		}
	}
	return up >= len(r)-2 || down >= len(r)-2
}

// commonPasswords are the most used passwords of public breach corpora (lower-cased),
// with the long ones that survive a 15-character minimum listed first. A full breached
// password check (k-anonymity against a breach corpus) would be a network dependency;
// this list is the cheap part of 800-63B's blocklist.
var commonPasswords = func() map[string]bool {
	list := []string{
		// 15 characters or more, seen in the top lists of breach corpora
		"123456789012345", "1234567890123456", "12345678901234567890", "qwertyuiopasdfgh",
		"qwertyuiopasdfghjkl", "qwertyuiopasdfghjklzxcvbnm", "1qaz2wsx3edc4rfv", "1q2w3e4r5t6y7u8i",
		"1q2w3e4r5t6y7u8i9o0p", "zaq12wsxcde34rfv", "qazwsxedcrfvtgbyhn", "passwordpassword",
		"iloveyouiloveyou", "abcdefghijklmnop", "aaaaaaaaaaaaaaaa", "correcthorsebatterystaple",
		"correct horse battery staple", "thequickbrownfox", "thequickbrownfoxjumpsoverthelazydog",
		"letmeinletmein123", "welcome123456789", "administrator123", "passw0rdpassw0rd",
		"qwerty1234567890", "asdfghjkl1234567", "00000000000000000", "111111111111111",
		"1111111111111111", "football12345678", "baseball12345678", "superman12345678",
		"changemechangeme", "trustno1trustno1", "mypasswordisstrong", "thisismypassword",
		"password1234567890", "password123456789", "p@ssw0rd12345678", "iloveyou12345678",
		// the classic top 100 (below the minimum length, kept so that a lowered minimum
		// still rejects them)
		"123456", "password", "12345678", "qwerty", "123456789", "12345", "1234", "111111",
		"1234567", "dragon", "123123", "baseball", "abc123", "football", "monkey", "letmein",
		"696969", "shadow", "master", "666666", "qwertyuiop", "123321", "mustang", "1234567890",
		"michael", "654321", "superman", "1qaz2wsx", "7777777", "121212", "000000", "qazwsx",
		"123qwe", "killer", "trustno1", "jordan", "jennifer", "zxcvbnm", "asdfgh", "hunter",
		"buster", "soccer", "harley", "batman", "andrew", "tigger", "sunshine", "iloveyou",
		"2000", "charlie", "robert", "thomas", "hockey", "ranger", "daniel", "starwars", "klaster",
		"112233", "george", "computer", "michelle", "jessica", "pepper", "1111", "zxcvbn",
		"555555", "11111111", "131313", "freedom", "777777", "pass", "maggie", "159753",
		"aaaaaa", "ginger", "princess", "joshua", "cheese", "amanda", "summer", "love", "ashley",
		"nicole", "chelsea", "biteme", "matthew", "access", "yankees", "987654321", "dallas",
		"austin", "thunder", "taylor", "matrix", "mobilemail", "mom", "monitor", "monitoring",
		"montana", "moon", "moscow", "welcome", "password1", "password123", "admin", "qwerty123",
		"1q2w3e4r", "1q2w3e", "welcome1", "p@ssw0rd", "passw0rd", "letmein1", "abcd1234",
	}
	m := make(map[string]bool, len(list))
	for _, p := range list {
		m[p] = true
	}
	return m
}()
