package testdb

import (
	"os"
	"testing"
)

// StripeURL is the base URL of the stripe-mock that the test command started
// (EnvStripe). Under CI a missing stripe-mock fails the test; a plain `go test` outside
// the test command skips it.
func StripeURL(t testing.TB) string {
	t.Helper()
	url := os.Getenv(EnvStripe)
	if url == "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not set: run the tests with `make test` (it starts stripe-mock)", EnvStripe)
		}
		t.Skipf("%s not set: run the tests with `make test` (it starts stripe-mock)", EnvStripe)
	}
	return url
}
