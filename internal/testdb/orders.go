package testdb

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore/store"
)

// Order inserts a bare PAID order (no lines, placeholder ciphertexts) with id, or a new
// id when id is uuid.Nil, for tests of what hangs off orders (shipments); checkout's
// own tests place real orders.
func Order(t testing.TB, db *store.DB, id uuid.UUID) uuid.UUID {
	t.Helper()
	if id == uuid.Nil {
		id = uuid.New()
	}
	_, err := db.Pool.Exec(context.Background(), `
		INSERT INTO orders (id, number, email_index, contact_enc, access_hash, cart_ref, status, currency,
			subtotal_cents, discount_cents, shipping_cents, tax_cents, total_cents, shipping_method, country,
			payment_method, payment_status)
		VALUES ($1, 'BK-TEST-' || $2, '\x00', '\x00', '\x00', $3, 'PAID', 'USD', 1000, 0, 0, 0, 1000, 'STANDARD', 'GB',
			'CARD', 'SUCCEEDED')`, id, id.String(), id[:])
	if err != nil {
		t.Fatalf("insert order: %v", err)
	}
	return id
}
