package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"time"
)

// Refresh tokens are opaque: 32 random bytes, base64url without padding (43 characters).
// Only their SHA-256 is stored — a fast hash suffices because the token has 256 bits of
// entropy, so a stolen table yields nothing to guess at. Each token belongs to a family
// (one sign-in session), is single-use, and is replaced by a new token of the same
// family on every refresh; presenting a token that was already used revokes the whole
// family, since one of the two presenters must be a thief (OAuth 2.0 Security BCP,
// refresh token rotation). There is no grace period for concurrent refreshes: clients
// must serialise their refresh calls (one in flight per session).

const (
	refreshTokenBytes = 32
	refreshTokenLen   = 43 // base64.RawURLEncoding.EncodedLen(32)

	// DefaultRefreshTTL is how long an unused refresh token stays valid: a session idle
	// for longer must sign in again.
	DefaultRefreshTTL = 14 * 24 * time.Hour
	// DefaultSessionTTL is the absolute lifetime of a refresh-token family, however
	// often it is refreshed.
	DefaultSessionTTL = 90 * 24 * time.Hour
)

// NewRefreshToken returns a new refresh token, to give the client, and its hash, to store.
func NewRefreshToken() (token string, hash []byte, err error) {
	b := make([]byte, refreshTokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", nil, fmt.Errorf("generate refresh token: %w", err)
	}
	token = base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(token))
	return token, sum[:], nil
}

// HashRefreshToken returns the stored hash of token, or ErrTokenInvalid when token is not
// shaped like one of ours (so that junk never reaches the database).
func HashRefreshToken(token string) ([]byte, error) {
	if len(token) != refreshTokenLen {
		return nil, fmt.Errorf("%w: malformed refresh token", ErrTokenInvalid)
	}
	if _, err := base64.RawURLEncoding.Strict().DecodeString(token); err != nil {
		return nil, fmt.Errorf("%w: malformed refresh token", ErrTokenInvalid)
	}
	sum := sha256.Sum256([]byte(token))
	return sum[:], nil
}
