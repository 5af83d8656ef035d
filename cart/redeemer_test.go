package cart_test

import (
	"bytes"
	"testing"

	"github.com/shopfront/bookstore/cart"
	"github.com/shopfront/bookstore/pii"
)

// TestRedeemerNormalisesEmail: a guest cannot escape a per-customer limit by changing
// the case or spacing of their email.
func TestRedeemerNormalisesEmail(t *testing.T) {
	key, _ := pii.GenerateKey()
	ix, err := pii.NewBlindIndex(key)
	if err != nil {
		t.Fatal(err)
	}
	a, b := cart.Redeemer(ix, " Ann@Example.COM "), cart.Redeemer(ix, "ann@example.com")
	if !bytes.Equal(a, b) || len(a) != 32 {
		t.Fatalf("redeemers differ: %x %x", a, b)
	}
	if bytes.Equal(a, cart.Redeemer(ix, "bob@example.com")) {
		t.Fatal("two emails share a redeemer")
	}
	if bytes.Contains(a, []byte("ann")) {
		t.Fatal("the redeemer holds the email")
	}
}
