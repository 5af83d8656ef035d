package auth_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/shopfront/bookstore/auth"
)

func TestRefreshToken(t *testing.T) {
	tok, hash, err := auth.NewRefreshToken()
	if err != nil {
		t.Fatal(err)
	}
	if len(tok) != 43 {
		t.Fatalf("token length %d", len(tok))
	}
	sum := sha256.Sum256([]byte(tok))
	if !bytes.Equal(hash, sum[:]) {
		t.Fatal("hash is not SHA-256 of the token")
	}
	again, err := auth.HashRefreshToken(tok)
	if err != nil || !bytes.Equal(again, hash) {
		t.Fatalf("HashRefreshToken = %x, %v", again, err)
	}
	other, _, _ := auth.NewRefreshToken()
	if other == tok {
		t.Fatal("two refresh tokens are equal")
	}
	for _, bad := range []string{"", "short", tok + "A", tok[:42] + "=", tok[:42] + "+", tok[:42] + "/"} {
		if _, err := auth.HashRefreshToken(bad); !errors.Is(err, auth.ErrTokenInvalid) {
			t.Errorf("HashRefreshToken(%q) = %v", bad, err)
		}
	}
}
