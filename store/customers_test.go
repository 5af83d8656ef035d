package store_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"testing"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/internal/testdb"
	"github.com/shopfront/bookstore/store"
)

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// newCustomer inserts a customer with random stand-in ciphertexts (the store never looks
// inside them).
func newCustomer(t testing.TB, db *store.DB) *store.Customer {
	t.Helper()
	c := &store.Customer{
		ID:           uuid.New(),
		EmailIndex:   randomBytes(t, 32),
		EmailEnc:     randomBytes(t, 100),
		NameEnc:      randomBytes(t, 90),
		PasswordHash: "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
	}
	if err := db.Customers.Create(context.Background(), c); err != nil {
		t.Fatalf("create customer: %v", err)
	}
	return c
}

func TestCustomers(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		c := newCustomer(t, db)
		if c.Role != "CUSTOMER" || c.CreatedAt.IsZero() {
			t.Fatalf("created %+v", c)
		}
		byID, err := db.Customers.ByID(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		byIdx, err := db.Customers.ByEmailIndex(ctx, c.EmailIndex)
		if err != nil {
			t.Fatal(err)
		}
		for _, got := range []*store.Customer{byID, byIdx} {
			if got.ID != c.ID || !bytes.Equal(got.EmailEnc, c.EmailEnc) || !bytes.Equal(got.NameEnc, c.NameEnc) ||
				got.PhoneEnc != nil || got.PasswordHash != c.PasswordHash || got.Role != "CUSTOMER" {
				t.Fatalf("read back %+v, want %+v", got, c)
			}
		}

		// The blind index is unique: a second account for the same email is a CONFLICT.
		dup := &store.Customer{ID: uuid.New(), EmailIndex: c.EmailIndex, EmailEnc: []byte{1}, NameEnc: []byte{2},
			PhoneEnc: []byte{3}, PasswordHash: "x"}
		err = db.Customers.Create(ctx, dup)
		if bookstore.ErrorCode(err) != bookstore.CodeConflict {
			t.Fatalf("duplicate email index: %v, want CONFLICT", err)
		}

		if _, err := db.Customers.ByID(ctx, uuid.New()); bookstore.ErrorCode(err) != bookstore.CodeNotFound {
			t.Fatalf("ByID of a missing customer: %v", err)
		}
		if _, err := db.Customers.ByEmailIndex(ctx, randomBytes(t, 32)); bookstore.ErrorCode(err) != bookstore.CodeNotFound {
			t.Fatalf("ByEmailIndex of a missing customer: %v", err)
		}

		if err := db.Customers.SetPasswordHash(ctx, c.ID, "new-hash"); err != nil {
			t.Fatal(err)
		}
		if err := db.Customers.SetRole(ctx, c.ID, "ADMIN"); err != nil {
			t.Fatal(err)
		}
		got, _ := db.Customers.ByID(ctx, c.ID)
		if got.PasswordHash != "new-hash" || got.Role != "ADMIN" || !got.UpdatedAt.After(c.UpdatedAt) && !got.UpdatedAt.Equal(c.UpdatedAt) {
			t.Fatalf("after updates: %+v", got)
		}
		if err := db.Customers.SetRole(ctx, c.ID, "ROOT"); err == nil || bookstore.ErrorCode(err) != bookstore.CodeInternal {
			t.Fatalf("SetRole ROOT: %v, want the CHECK constraint to refuse it", err)
		}
		if err := db.Customers.SetPasswordHash(ctx, uuid.New(), "x"); bookstore.ErrorCode(err) != bookstore.CodeNotFound {
			t.Fatalf("SetPasswordHash of a missing customer: %v", err)
		}

		// Phone is optional but kept when given.
		p := &store.Customer{ID: uuid.New(), EmailIndex: randomBytes(t, 32), EmailEnc: []byte{1}, NameEnc: []byte{2},
			PhoneEnc: []byte{3, 4}, PasswordHash: "x", Role: "ADMIN"}
		if err := db.Customers.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		if got, _ := db.Customers.ByID(ctx, p.ID); !bytes.Equal(got.PhoneEnc, []byte{3, 4}) || got.Role != "ADMIN" {
			t.Fatalf("customer with phone: %+v", got)
		}
		// An email index that is not 32 bytes is refused by the schema.
		bad := &store.Customer{ID: uuid.New(), EmailIndex: []byte("ann@example.com"), EmailEnc: []byte{1}, NameEnc: []byte{2}, PasswordHash: "x"}
		if err := db.Customers.Create(ctx, bad); err == nil {
			t.Fatal("a non-HMAC email index was accepted")
		}
	})
}

func TestAddresses(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		ann, bob := newCustomer(t, db), newCustomer(t, db)
		var ids []uuid.UUID
		for range 3 {
			a := &store.Address{ID: uuid.New(), CustomerID: ann.ID, DataEnc: randomBytes(t, 120)}
			if err := db.Customers.AddAddress(ctx, a); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, a.ID)
		}
		list, err := db.Customers.Addresses(ctx, ann.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 3 {
			t.Fatalf("%d addresses, want 3", len(list))
		}
		if other, _ := db.Customers.Addresses(ctx, bob.ID); len(other) != 0 {
			t.Fatalf("bob sees %d addresses", len(other))
		}
		if err := db.Customers.DeleteAddress(ctx, bob.ID, ids[0]); bookstore.ErrorCode(err) != bookstore.CodeNotFound {
			t.Fatalf("deleting another customer's address: %v, want NOT_FOUND", err)
		}
		if err := db.Customers.DeleteAddress(ctx, ann.ID, ids[0]); err != nil {
			t.Fatal(err)
		}
		if list, _ := db.Customers.Addresses(ctx, ann.ID); len(list) != 2 {
			t.Fatalf("%d addresses after delete", len(list))
		}
		err = db.Customers.AddAddress(ctx, &store.Address{ID: uuid.New(), CustomerID: uuid.New(), DataEnc: []byte{1}})
		if bookstore.ErrorCode(err) != bookstore.CodeNotFound {
			t.Fatalf("address of a missing customer: %v, want NOT_FOUND", err)
		}
	})
}
