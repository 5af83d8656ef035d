package server_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore/auth"
)

const stockMutation = `mutation($id: ID!, $delta: Int!, $reason: String!) {
	adjustStock(bookId: $id, delta: $delta, reason: $reason) {
		book { availability { quantity } }
		movement { delta reason stock actorId at }
		userErrors { code field message }
	}
}`

type stockPayload struct {
	Book *struct {
		Availability struct{ Quantity int }
	}
	Movement *struct {
		Delta, Stock int
		Reason       string
		ActorID      *string
	}
	UserErrors []struct {
		Code    string
		Field   []string
		Message string
	}
}

// TestAdminAdjustsStock: stock changes by audited deltas through the API; the ledger
// lists them newest first with the admin who made them; customers and anonymous callers
// can neither change nor read it; bad input is a typed userError and changes nothing.
func TestAdminAdjustsStock(t *testing.T) {
	a := newAPI(t, 2)
	adminID := uuid.New()
	admin, _, err := a.tokens.Issue(auth.Identity{CustomerID: adminID, Role: auth.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	customer, _, err := a.tokens.Issue(auth.Identity{CustomerID: uuid.New(), Role: auth.RoleCustomer})
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
	id, start := book.Books.Edges[0].Node.ID, book.Books.Edges[0].Node.Availability.Quantity

	adjust := func(token string, delta int, reason string) (stockPayload, gqlResponse) {
		t.Helper()
		r := a.as(token, stockMutation, map[string]any{"id": id, "delta": delta, "reason": reason})
		var out struct{ AdjustStock stockPayload }
		if r.Data != nil && string(r.Data) != "null" {
			if err := json.Unmarshal(r.Data, &out); err != nil {
				t.Fatal(err)
			}
		}
		return out.AdjustStock, r
	}

	p, r := adjust(admin, 12, "  delivery 4711  ")
	if len(r.Errors) > 0 || len(p.UserErrors) > 0 || p.Book.Availability.Quantity != start+12 ||
		p.Movement.Delta != 12 || p.Movement.Stock != start+12 || p.Movement.Reason != "delivery 4711" ||
		p.Movement.ActorID == nil {
		t.Fatalf("adjust +12 = %+v, errors %v", p, r.Errors)
	}

	bad := []struct {
		name   string
		delta  int
		reason string
		code   string
		field  string
	}{
		{"below zero", -(start + 13), "shrinkage", "INSUFFICIENT_STOCK", "delta"},
		{"zero delta", 0, "nothing", "BAD_USER_INPUT", "delta"},
		{"empty reason", 1, "   ", "BAD_USER_INPUT", "reason"},
		{"long reason", 1, strings.Repeat("é", 201), "BAD_USER_INPUT", "reason"},
		{"control characters", 1, "a\x00b", "BAD_USER_INPUT", "reason"},
	}
	for _, c := range bad {
		p, r := adjust(admin, c.delta, c.reason)
		if len(r.Errors) > 0 || len(p.UserErrors) != 1 || p.UserErrors[0].Code != c.code ||
			strings.Join(p.UserErrors[0].Field, ".") != c.field || p.Movement != nil {
			t.Errorf("%s: payload %+v, errors %v", c.name, p, r.Errors)
		}
	}
	for name, token := range map[string]string{"customer": customer, "anonymous": ""} {
		if _, r := adjust(token, 5, "theft"); len(r.Errors) == 0 {
			t.Errorf("%s changed stock", name)
		}
		r := a.as(token, `query($id: ID!) { stockMovements(bookId: $id) { edges { node { delta } } } }`, map[string]any{"id": id})
		if len(r.Errors) == 0 {
			t.Errorf("%s read the stock ledger", name)
		}
	}

	// A recount over a stale read is refused; over the current stock it applies.
	var set struct{ SetStock stockPayload }
	a.mustAs(admin, `mutation($id: ID!) { setStock(bookId: $id, quantity: 3, expectedQuantity: 0) {
		book { availability { quantity } } movement { delta } userErrors { code field message } } }`, &set, "id", id)
	if len(set.SetStock.UserErrors) != 1 || set.SetStock.UserErrors[0].Code != "CONFLICT" ||
		set.SetStock.Book.Availability.Quantity != start+12 {
		t.Fatalf("stale recount = %+v", set.SetStock)
	}

	var ledger struct {
		StockMovements struct {
			Edges []struct {
				Node struct {
					Delta   int
					Reason  string
					ActorID *string
				}
			}
		}
	}
	a.mustAs(admin, `query($id: ID!) { stockMovements(bookId: $id, first: 10) { edges { node { delta reason actorId } } } }`, &ledger, "id", id)
	e := ledger.StockMovements.Edges
	// Newest first: the +12 adjustment, then the demo seed's import.
	if len(e) != 2 || e[0].Node.Delta != 12 || e[0].Node.ActorID == nil || e[1].Node.Reason != "import" || e[1].Node.ActorID != nil {
		t.Fatalf("ledger = %+v", e)
	}
}
