package orders_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/orders"
	"github.com/shopfront/bookstore/shipping"
)

// A cancellation reason is free text like a review's: control characters (NUL, which
// PostgreSQL refuses in the event's JSON, BEL, ESC, line breaks) and bidirectional
// overrides are BAD_USER_INPUT on reason, and the order stays as it was.
func TestCancelReasonIsCheckedText(t *testing.T) {
	e := newEnv(t)
	ann := e.customer()
	o := e.order(ann, 1)
	for _, r := range []string{"a\x00b", "a\u0007b", "a\x1b[31mb", "a\nb", "a\u202eb", "a\u2066b", "a\u2069b", "a\x7fb",
		"bad \xff utf-8", strings.Repeat("x", orders.MaxReasonLen+1)} {
		_, err := e.svc.Cancel(ctx, orders.Caller{Customer: ann}, o.ID, r)
		var be *bookstore.Error
		if bookstore.ErrorCode(err) != bookstore.CodeBadUserInput || !asError(err, &be) || be.Field != "reason" {
			t.Fatalf("reason %q: %v, want BAD_USER_INPUT on reason", r, err)
		}
		if s := e.status(o.ID); s != bookstore.OrderPaid {
			t.Fatalf("after the refused reason %q the order is %s", r, s)
		}
	}
	// Visible text, other scripts, an emoji and a zero-width joiner are fine; spaces around are trimmed.
	ok := "  " + strings.Repeat("é", orders.MaxReasonLen-6) + " 本 👩‍💻  "
	got, err := e.svc.Cancel(ctx, orders.Caller{Customer: ann}, o.ID, ok)
	if err != nil || got.Status != bookstore.OrderCancelled {
		t.Fatalf("cancel with a long reason: %v %+v", err, got)
	}
	if d := e.cancelDetail(o.ID); d["reason"] != strings.TrimSpace(ok) {
		t.Fatalf("reason stored %q", d["reason"])
	}
}

func asError(err error, be **bookstore.Error) bool {
	e, ok := err.(*bookstore.Error)
	*be = e
	return ok
}

// notFoundCarrier is a carrier that has lost the order's shipment: Cancel answers
// ErrNotFound.
type notFoundCarrier struct{ shipping.Carrier }

func (notFoundCarrier) Cancel(context.Context, uuid.UUID) error { return shipping.ErrNotFound }

// A FULFILLING order whose carrier says it has no shipment of it is not cancelled: the
// label was printed, so the parcel may still ship; refunding it would give the books away.
func TestCancelFulfillingWhenTheCarrierHasNoShipmentRefuses(t *testing.T) {
	e := newEnv(t)
	ann := e.customer()
	o := e.order(ann, 2)
	e.shipped(o)
	svc, err := orders.New(orders.Config{DB: e.db, Checkout: e.co, PSP: e.psp, Carrier: notFoundCarrier{e.carrier},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	stock := e.stock()
	_, err = svc.Cancel(ctx, orders.Caller{Customer: ann}, o.ID, "")
	if bookstore.ErrorCode(err) != orders.CodeNotCancellable {
		t.Fatalf("cancel: %v, want %s", err, orders.CodeNotCancellable)
	}
	if s := e.status(o.ID); s != bookstore.OrderFulfilling {
		t.Fatalf("order %s, want FULFILLING", s)
	}
	if n := e.refunds(o.ID); n != 0 || e.stock() != stock {
		t.Fatalf("%d refunds, stock %d (was %d)", n, e.stock(), stock)
	}
}
