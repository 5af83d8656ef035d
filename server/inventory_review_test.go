package server_test

import (
	"encoding/json"
	"testing"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore/auth"
)

func inventorySetup(t *testing.T) (*api, string, string, int) {
	a := newAPI(t, 2)
	admin, _, err := a.tokens.Issue(auth.Identity{CustomerID: uuid.New(), Role: auth.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	var book struct {
		Books struct {
			Edges []struct {
				Node struct {
					ID           string
					Availability struct{ Quantity int }
				}
			}
		}
	}
	a.ok(`{ books(first: 1, filter: {inStock: true}) { edges { node { id availability { quantity } } } } }`, nil, &book)
	return a, admin, book.Books.Edges[0].Node.ID, book.Books.Edges[0].Node.Availability.Quantity
}

// R8: two stock changes in one request: the second payload's book shows the stock the
// first left (the request's stock loader caches it), not the stock now.
func TestInventoryReviewPayloadBookIsCurrent(t *testing.T) {
	a, admin, id, start := inventorySetup(t)
	r := a.as(admin, `mutation($id: ID!) {
		a: adjustStock(bookId: $id, delta: 5, reason: "delivery 1") { book { availability { quantity } } movement { stock } }
		b: adjustStock(bookId: $id, delta: 5, reason: "delivery 2") { book { availability { quantity } } movement { stock } }
	}`, map[string]any{"id": id})
	if len(r.Errors) > 0 {
		t.Fatal(r.Errors)
	}
	var out struct {
		B struct {
			Book     struct{ Availability struct{ Quantity int } }
			Movement struct{ Stock int }
		}
	}
	if err := json.Unmarshal(r.Data, &out); err != nil {
		t.Fatal(err)
	}
	if out.B.Book.Availability.Quantity != start+10 {
		t.Fatalf("second payload: book quantity %d, movement stock %d; want %d", out.B.Book.Availability.Quantity, out.B.Movement.Stock, start+10)
	}
}

// R4c: a delta beyond GraphQL's 32-bit Int passed as a variable is accepted (the same
// literal is refused by validation) and leaves a stock of 5,000,000,170; MaxInt64 is
// answered INSUFFICIENT_STOCK ("would leave -9223372036854775639") instead of BAD_USER_INPUT.
func TestInventoryReviewHugeDeltaThroughAPI(t *testing.T) {
	a, admin, id, _ := inventorySetup(t)
	for _, d := range []int64{5_000_000_000, 9223372036854775807} {
		r := a.as(admin, `mutation($id: ID!, $d: Int!) { adjustStock(bookId: $id, delta: $d, reason: "delivery") {
			movement { stock } userErrors { code field message } } }`, map[string]any{"id": id, "d": d})
		var out struct{ AdjustStock stockPayload }
		_ = json.Unmarshal(r.Data, &out)
		if len(r.Errors) > 0 || len(out.AdjustStock.UserErrors) != 1 || out.AdjustStock.UserErrors[0].Code != "BAD_USER_INPUT" {
			t.Errorf("delta %d: data %s errors %v; want BAD_USER_INPUT on delta", d, r.Data, r.Errors)
		}
	}
}

// R11: CleanStockReason promises "printable text" but only rejects Cc: a right-to-left
// override, a zero-width space and a line separator are stored in the audit reason.
func TestInventoryReviewReasonPrintable(t *testing.T) {
	a, admin, id, _ := inventorySetup(t)
	r := a.as(admin, `mutation($id: ID!, $why: String!) { adjustStock(bookId: $id, delta: 1, reason: $why) {
		movement { reason } userErrors { code field } } }`, map[string]any{"id": id, "why": "a\u202egnp.exe\u200b\u2028x"})
	var out struct{ AdjustStock stockPayload }
	_ = json.Unmarshal(r.Data, &out)
	if len(out.AdjustStock.UserErrors) != 1 || out.AdjustStock.UserErrors[0].Code != "BAD_USER_INPUT" {
		t.Errorf("reason with U+202E/U+200B/U+2028: %s", r.Data)
	}
}
