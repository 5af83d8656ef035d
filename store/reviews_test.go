package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shopfront/bookstore/internal/testdb"
)

// TestReviewAuthorsMigration: migration 14 on a database holding reviews from before it
// (imports, the demo seed: no author) keeps them, lets any number of them stay
// anonymous, and refuses a second review of a book by one customer.
func TestReviewAuthorsMigration(t *testing.T) {
	ctx := context.Background()
	db := testdb.New(t)
	if _, err := db.Pool.Exec(ctx, `DROP SCHEMA public CASCADE; CREATE SCHEMA public`); err != nil {
		t.Fatal(err)
	}
	if err := db.MigrateTo(ctx, 13); err != nil {
		t.Fatal(err)
	}
	book, customer := uuid.New(), uuid.New()
	if _, err := db.Pool.Exec(ctx, `INSERT INTO books (id, isbn, title, price_cents, rating, rating_count)
		VALUES ($1, '9780000000001', 'Old', 1000, 4, 2)`, book); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `INSERT INTO reviews (book_id, rating, reviewer_name) VALUES ($1, 4, 'A'), ($1, 4, 'B')`, book); err != nil {
		t.Fatal(err)
	}
	if n, err := db.Migrate(ctx); err != nil || n < 1 {
		t.Fatalf("Migrate from 13 = %d, %v; want 14 and any later ones applied", n, err)
	}
	var kept, anonymous int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE customer_id IS NULL) FROM reviews WHERE book_id = $1`,
		book).Scan(&kept, &anonymous); err != nil || kept != 2 || anonymous != 2 {
		t.Fatalf("old reviews after the migration: %d, %d anonymous (%v); want 2, 2", kept, anonymous, err)
	}
	if _, err := db.Pool.Exec(ctx, `INSERT INTO customers (id, email_index, email_enc, name_enc, password_hash, role)
		VALUES ($1, $2, '\x01', '\x01', 'x', 'CUSTOMER')`, customer, append(customer[:], customer[:]...)); err != nil {
		t.Fatal(err)
	}
	ins := `INSERT INTO reviews (book_id, customer_id, rating, reviewer_name) VALUES ($1, $2, 5, 'C')`
	if _, err := db.Pool.Exec(ctx, ins, book, customer); err != nil {
		t.Fatal(err)
	}
	_, err := db.Pool.Exec(ctx, ins, book, customer)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "23505" {
		t.Fatalf("a second review of the book by the customer: %v, want a unique violation", err)
	}
	// Deleting the account keeps the review, anonymous.
	if _, err := db.Pool.Exec(ctx, `DELETE FROM customers WHERE id = $1`, customer); err != nil {
		t.Fatal(err)
	}
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE customer_id IS NULL) FROM reviews WHERE book_id = $1`,
		book).Scan(&anonymous); err != nil || anonymous != 3 {
		t.Fatalf("after the account was deleted %d anonymous reviews (%v), want 3", anonymous, err)
	}
}
