package pii

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/text/unicode/norm"
)

// BlindIndex computes keyed, deterministic digests of lookup values (the email used to
// sign in), so that the database can find a customer by email while storing the email
// only encrypted. HMAC-SHA256 under a key that is not in the database means a stolen
// table does not allow a dictionary attack against the index.
//
// The key is separate from the master keys and never rotates by configuration alone:
// a new key changes every digest, so rotating it means recomputing every row's index
// from the decrypted email (a re-index) while both keys are known.
type BlindIndex struct{ key []byte }

// NewBlindIndex returns an index keyed by key (at least KeySize bytes).
func NewBlindIndex(key []byte) (*BlindIndex, error) {
	if len(key) < KeySize {
		return nil, fmt.Errorf("pii: index key is %d bytes, want at least %d", len(key), KeySize)
	}
	return &BlindIndex{key: append([]byte(nil), key...)}, nil
}

// ParseIndexKey parses PII_INDEX_KEY (base64 of at least 32 bytes).
func ParseIndexKey(s string) (*BlindIndex, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("pii: no index key configured")
	}
	key, err := DecodeKey(s)
	if err != nil {
		return nil, fmt.Errorf("pii: index key: %w", err)
	}
	return NewBlindIndex(key)
}

// String hides the key from logs.
func (b *BlindIndex) String() string { return "pii.BlindIndex{key: redacted}" }

// GoString hides the key from %#v.
func (b *BlindIndex) GoString() string { return b.String() }

// Email returns the 32-byte index of an email address after NormalizeEmail, so that
// " Ann@Example.COM " and "ann@example.com" find the same customer.
func (b *BlindIndex) Email(email string) []byte {
	return b.sum("email", NormalizeEmail(email))
}

func (b *BlindIndex) sum(kind, value string) []byte {
	m := hmac.New(sha256.New, b.key)
	m.Write([]byte(kind))
	m.Write([]byte{0})
	m.Write([]byte(value))
	return m.Sum(nil)
}

// NormalizeEmail trims surrounding space, applies Unicode NFC (so that composed and
// decomposed accents compare equal) and lower-cases the whole address. Lower-casing the
// local part is technically lossy (RFC 5321 lets it be case-sensitive) but matches what
// every mail provider does, and customers expect "Ann@" and "ann@" to be one account.
func NormalizeEmail(email string) string {
	return strings.ToLower(norm.NFC.String(strings.TrimSpace(email)))
}
