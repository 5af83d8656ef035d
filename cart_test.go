package bookstore_test

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore"
)

func TestPrice(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	fiction, scifi, poetry := uuid.New(), uuid.New(), uuid.New()
	a := &bookstore.Book{ID: uuid.New(), Title: "A", PriceCents: 1999, Currency: "USD"} // scifi (under fiction)
	b := &bookstore.Book{ID: uuid.New(), Title: "B", PriceCents: 1000, Currency: "USD"} // poetry
	limit := int64(5)
	past := now.Add(-time.Hour)
	promos := map[string]*bookstore.Promotion{
		"WELCOME10": {Code: "WELCOME10", Kind: bookstore.DiscountPercent, Value: 10, Active: true},
		"BOOKWORM5": {Code: "BOOKWORM5", Kind: bookstore.DiscountFixed, Value: 500, MinSubtotalCents: 3000, Active: true},
		"FICTION50": {Code: "FICTION50", Kind: bookstore.DiscountPercent, Value: 50, CategoryID: &fiction, Active: true},
		"HUGE":      {Code: "HUGE", Kind: bookstore.DiscountFixed, Value: 1_000_000, Active: true},
		"OLD":       {Code: "OLD", Kind: bookstore.DiscountPercent, Value: 10, EndsAt: &past, Active: true},
		"GONE":      {Code: "GONE", Kind: bookstore.DiscountPercent, Value: 10, UsageLimit: &limit, Used: 5, Active: true},
		"STACK2":    {Code: "STACK2", Kind: bookstore.DiscountFixed, Value: 200, Combinable: true, Active: true},
		"STACK3":    {Code: "STACK3", Kind: bookstore.DiscountFixed, Value: 300, Combinable: true, Active: true},
		"ALLOFF":    {Code: "ALLOFF", Kind: bookstore.DiscountFixed, Value: 1_000_000, Combinable: true, Active: true},
	}
	base := bookstore.PriceInput{
		Books:          map[uuid.UUID]*bookstore.Book{a.ID: a, b.ID: b},
		Stock:          map[uuid.UUID]int64{a.ID: 10, b.ID: 1},
		Promotions:     promos,
		BookCategories: map[uuid.UUID][]uuid.UUID{a.ID: {scifi, fiction}, b.ID: {poetry}},
		Tax:            bookstore.TaxRates{"DE": 1900},
		Now:            now,
	}
	std := &bookstore.DefaultShippingMethods()[0]
	lines := []bookstore.CartLine{{BookID: a.ID, Quantity: 2}, {BookID: b.ID, Quantity: 1}} // 3998 + 1000 = 4998
	for _, tc := range []struct {
		name       string
		lines      []bookstore.CartLine
		codes      []string
		ship       *bookstore.ShippingMethod
		country    string
		want       bookstore.Cost
		applicable []bool
	}{
		{name: "no codes", lines: lines, want: bookstore.Cost{SubtotalCents: 4998, TotalCents: 4998}},
		{name: "percent rounds down", lines: lines, codes: []string{"WELCOME10"},
			want: bookstore.Cost{SubtotalCents: 4998, DiscountCents: 499, TotalCents: 4499}, applicable: []bool{true}},
		{name: "minimum met", lines: lines, codes: []string{"BOOKWORM5"},
			want: bookstore.Cost{SubtotalCents: 4998, DiscountCents: 500, TotalCents: 4498}, applicable: []bool{true}},
		{name: "minimum not met", lines: lines[1:], codes: []string{"BOOKWORM5"},
			want: bookstore.Cost{SubtotalCents: 1000, TotalCents: 1000}, applicable: []bool{false}},
		{name: "category scope includes descendants", lines: lines, codes: []string{"FICTION50"},
			want: bookstore.Cost{SubtotalCents: 4998, DiscountCents: 1999, TotalCents: 2999}, applicable: []bool{true}},
		{name: "scope without eligible books", lines: lines[1:], codes: []string{"FICTION50"},
			want: bookstore.Cost{SubtotalCents: 1000, TotalCents: 1000}, applicable: []bool{false}},
		{name: "fixed amount capped at subtotal", lines: lines[1:], codes: []string{"HUGE"},
			want: bookstore.Cost{SubtotalCents: 1000, DiscountCents: 1000, TotalCents: 0}, applicable: []bool{true}},
		{name: "expired and used up", lines: lines, codes: []string{"OLD", "GONE"},
			want: bookstore.Cost{SubtotalCents: 4998, TotalCents: 4998}, applicable: []bool{false, false}},
		{name: "unknown code", lines: lines, codes: []string{"NOPE"},
			want: bookstore.Cost{SubtotalCents: 4998, TotalCents: 4998}, applicable: []bool{false}},
		{name: "non-combinable: first applicable wins", lines: lines, codes: []string{"WELCOME10", "BOOKWORM5"},
			want: bookstore.Cost{SubtotalCents: 4998, DiscountCents: 499, TotalCents: 4499}, applicable: []bool{true, false}},
		{name: "combinable after non-combinable refused", lines: lines, codes: []string{"WELCOME10", "STACK2"},
			want: bookstore.Cost{SubtotalCents: 4998, DiscountCents: 499, TotalCents: 4499}, applicable: []bool{true, false}},
		{name: "combinable codes stack", lines: lines, codes: []string{"STACK2", "STACK3"},
			want: bookstore.Cost{SubtotalCents: 4998, DiscountCents: 500, TotalCents: 4498}, applicable: []bool{true, true}},
		{name: "inapplicable first code does not block", lines: lines[1:], codes: []string{"BOOKWORM5", "WELCOME10"},
			want: bookstore.Cost{SubtotalCents: 1000, DiscountCents: 100, TotalCents: 900}, applicable: []bool{false, true}},
		{name: "shipping and tax", lines: lines, codes: []string{"WELCOME10"}, ship: std, country: "DE",
			// (4998 - 499 + 499) * 19% = 949.62 -> 950
			want: bookstore.Cost{SubtotalCents: 4998, DiscountCents: 499, ShippingCents: 499, TaxCents: 950, TotalCents: 5948}, applicable: []bool{true}},
		{name: "country without a rate", lines: lines, ship: std, country: "US",
			want: bookstore.Cost{SubtotalCents: 4998, ShippingCents: 499, TotalCents: 5497}},
		{name: "a code that takes nothing off does not apply", lines: lines[1:], codes: []string{"ALLOFF", "STACK2"},
			want: bookstore.Cost{SubtotalCents: 1000, DiscountCents: 1000}, applicable: []bool{true, false}},
		{name: "empty cart ships nothing", ship: std, country: "DE", want: bookstore.Cost{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := base
			in.Lines, in.Codes, in.Shipping, in.Country = tc.lines, tc.codes, tc.ship, tc.country
			p := bookstore.Price(in)
			tc.want.Currency = "USD"
			if p.Cost != tc.want {
				t.Fatalf("cost %+v, want %+v", p.Cost, tc.want)
			}
			if len(p.Codes) != len(tc.codes) {
				t.Fatalf("%d code results for %d codes", len(p.Codes), len(tc.codes))
			}
			applied := 0
			for i, r := range p.Codes {
				if r.Applicable != tc.applicable[i] || r.Message == "" {
					t.Errorf("code %s: applicable %v (%q), want %v", r.Code, r.Applicable, r.Message, tc.applicable[i])
				}
				if r.Applicable {
					if r.DiscountCents <= 0 || p.Applied[applied] != r.Promotion {
						t.Errorf("code %s: applicable for %d cents, applied %v", r.Code, r.DiscountCents, p.Applied)
					}
					applied++
				}
			}
			if len(p.Applied) != applied {
				t.Errorf("%d promotions applied (to be claimed), %d codes applicable", len(p.Applied), applied)
			}
		})
	}

	t.Run("warnings and missing books", func(t *testing.T) {
		in := base
		in.Lines = []bookstore.CartLine{{BookID: a.ID, Quantity: 2}, {BookID: b.ID, Quantity: 3}, {BookID: uuid.New(), Quantity: 1}}
		in.Stock = map[uuid.UUID]int64{a.ID: 0, b.ID: 1}
		p := bookstore.Price(in)
		if len(p.Lines) != 2 || len(p.Warnings) != 3 {
			t.Fatalf("%d lines, %d warnings: %+v", len(p.Lines), len(p.Warnings), p.Warnings)
		}
		for i, want := range []string{bookstore.CodeOutOfStock, bookstore.CodeInsufficientStock, bookstore.CodeUnknownBook} {
			if p.Warnings[i].Code != want {
				t.Errorf("warning %d: %s, want %s", i, p.Warnings[i].Code, want)
			}
		}
	})
}
