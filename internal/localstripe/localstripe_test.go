package localstripe_test

import (
	"context"
	"net/http"
	"os"
	"testing"

	"github.com/shopfront/bookstore/internal/localstripe"
)

// TestStartStop starts a private stripe-mock, checks that it answers Stripe API calls
// on loopback, and that Stop ends it and frees its port.
func TestStartStop(t *testing.T) {
	ctx := context.Background()
	srv, err := localstripe.Start(ctx, localstripe.Options{Stderr: os.Stderr})
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skipf("stripe-mock unavailable: %v", err)
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL()+"/v1/payment_intents", nil)
	req.Header.Set("Authorization", "Bearer sk_test_123")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/payment_intents: %s", resp.Status)
	}
	if err := srv.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Fatal("stripe-mock still answers after Stop")
	}
}
