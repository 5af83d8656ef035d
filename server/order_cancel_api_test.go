package server_test

import (
	"encoding/json"
	"testing"
)

// orderCancel's reason is checked text: a NUL (which PostgreSQL refuses in the event's
// JSON, once a top-level INTERNAL), BEL, ESC and bidi overrides are userErrors
// BAD_USER_INPUT on reason, and the order is not cancelled; a plain reason cancels it.
func TestOrderCancelReasonIsChecked(t *testing.T) {
	a := newAPI(t, 5)
	bs := a.cartBooks(1, 10)
	ann := a.register("ann@example.com", "Ann")
	order, _ := paidOrder(t, a, ann.AccessToken, "", bs[0])
	const m = `mutation($id: ID!, $r: String) { orderCancel(id: $id, reason: $r) { order { status } userErrors { code field } } }`
	type payload struct {
		OrderCancel struct {
			Order      *struct{ Status string }
			UserErrors []struct {
				Code  string
				Field []string
			}
		}
	}
	cancel := func(reason string) payload {
		t.Helper()
		r, err := a.try(ann.AccessToken, m, map[string]any{"id": order, "r": reason})
		if err != nil || len(r.Errors) > 0 {
			t.Fatalf("reason %q: %v %+v", reason, err, r.Errors)
		}
		var p payload
		if err := json.Unmarshal(r.Data, &p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, reason := range []string{"a\u0000b", "a\u0007b", "a\u001b[2Jb", "a\u202eb", "a\u2067b"} {
		p := cancel(reason)
		if ue := p.OrderCancel.UserErrors; len(ue) != 1 || ue[0].Code != "BAD_USER_INPUT" || len(ue[0].Field) != 1 || ue[0].Field[0] != "reason" {
			t.Fatalf("reason %q: %+v, want BAD_USER_INPUT on [reason]", reason, p.OrderCancel)
		}
	}
	if p := cancel("changed my mind"); p.OrderCancel.Order == nil || p.OrderCancel.Order.Status != "CANCELLED" {
		t.Fatalf("plain reason: %+v", p.OrderCancel)
	}
}
