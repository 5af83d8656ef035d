package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/internal/testdb"
	"github.com/shopfront/bookstore/store"
)

func TestParseTaxRates(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tax.txt")
	if err := os.WriteFile(file, []byte("# EU\nde:19\nFR: 5.5 # reduced\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		in   string
		want bookstore.TaxRates
		bad  bool
	}{
		{in: "", want: bookstore.TaxRates{}},
		{in: "US:0,DE:19,fr:5.5", want: bookstore.TaxRates{"US": 0, "DE": 1900, "FR": 550}},
		{in: "@" + file, want: bookstore.TaxRates{"DE": 1900, "FR": 550}},
		{in: "DE", bad: true},
		{in: "DEU:19", bad: true},
		{in: "DE:-1", bad: true},
		{in: "DE:101", bad: true},
		{in: "DE:abc", bad: true},
		{in: "DE:NaN", bad: true},
		{in: "DE:Inf", bad: true},
		{in: "@/no/such/file", bad: true},
	} {
		got, err := parseTaxRates(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("%q: accepted", tc.in)
			}
			continue
		}
		if err != nil || len(got) != len(tc.want) {
			t.Errorf("%q: %v, %v", tc.in, got, err)
		}
		for k, v := range tc.want {
			if got[k] != v {
				t.Errorf("%q: %s = %d, want %d", tc.in, k, got[k], v)
			}
		}
	}
}

func TestParseShipping(t *testing.T) {
	def, err := parseShipping("")
	if err != nil || len(def) != 2 || def[0].Code != "STANDARD" || def[1].Code != "EXPRESS" {
		t.Fatalf("default: %+v %v", def, err)
	}
	got, err := parseShipping("standard:0:7:Free shipping,NEXTDAY:2500:1")
	if err != nil || len(got) != 2 || got[0] != (bookstore.ShippingMethod{Code: "STANDARD", Name: "Free shipping", PriceCents: 0, EstimatedDays: 7}) ||
		got[1].Code != "NEXTDAY" || got[1].PriceCents != 2500 {
		t.Fatalf("parsed: %+v %v", got, err)
	}
	for _, bad := range []string{"STANDARD", "STANDARD:x:1", "STANDARD:-1:1", ":1:1"} {
		if _, err := parseShipping(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestSeedAddsDemoCodes: `bookstore seed` adds the codes the README names, and seeding
// again changes nothing.
func TestSeedAddsDemoCodes(t *testing.T) {
	url := testdb.NewURL(t)
	vars := withKeys(t, map[string]string{"DATABASE_URL": url})
	for range 2 {
		var out bytes.Buffer
		if err := run(context.Background(), []string{"seed", "--books", "5"}, env(vars), &out, &out); err != nil {
			t.Fatalf("seed: %v\n%s", err, out.String())
		}
	}
	db, err := store.Open(context.Background(), url, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ps, err := db.Promotions.ByCodes(context.Background(), []string{"WELCOME10", "BOOKWORM5", "SUMMER2020", "FIRST100"})
	if err != nil || len(ps) != 4 {
		t.Fatalf("%d demo codes, %v", len(ps), err)
	}
	for _, p := range ps {
		r := p.Redeemable(p.UpdatedAt)
		switch p.Code {
		case "WELCOME10":
			if r != "" || p.Kind != bookstore.DiscountPercent || p.Value != 10 || p.MinSubtotalCents != 0 || p.CategoryID != nil {
				t.Errorf("WELCOME10: %+v %q", p, r)
			}
		case "BOOKWORM5":
			if r != "" || p.Kind != bookstore.DiscountFixed || p.Value != 500 || p.MinSubtotalCents != 3000 {
				t.Errorf("BOOKWORM5: %+v %q", p, r)
			}
		default:
			if r == "" {
				t.Errorf("%s is redeemable; it should be expired or used up", p.Code)
			}
		}
	}
}
