package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shopfront/bookstore"
)

// Customers stores customer accounts and their addresses. It deals in ciphertext: the
// personal fields are encrypted (and the email blind-indexed) by the caller (package
// identity, with package pii) before they reach it, and are returned as stored.
type Customers struct{ db *DB }

// Customer is a customers row.
type Customer struct {
	ID uuid.UUID
	// EmailIndex is the blind index (keyed HMAC) of the normalised email; unique.
	EmailIndex []byte
	EmailEnc   []byte
	NameEnc    []byte
	PhoneEnc   []byte // nil when the customer gave no phone number
	// PasswordHash is an argon2id PHC string.
	PasswordHash string
	Role         string // "CUSTOMER" or "ADMIN"
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// Address is an addresses row: one encrypted document per postal address.
type Address struct {
	ID         uuid.UUID
	CustomerID uuid.UUID
	DataEnc    []byte
	CreatedAt  time.Time
}

const customerCols = `id, email_index, email_enc, name_enc, phone_enc, password_hash, role, created_at, updated_at`

func scanCustomer(row pgx.Row) (*Customer, error) {
	var c Customer
	err := row.Scan(&c.ID, &c.EmailIndex, &c.EmailEnc, &c.NameEnc, &c.PhoneEnc, &c.PasswordHash, &c.Role,
		&c.CreatedAt, &c.UpdatedAt)
	if err != nil {
		return nil, err
	}
	return &c, nil
}

const insertCustomer = `
INSERT INTO customers (id, email_index, email_enc, name_enc, phone_enc, password_hash, role)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING created_at, updated_at`

// Create inserts c. The caller chooses c.ID (the encrypted fields are bound to it), and
// c.Role defaults to CUSTOMER. An email index that is already registered is a CONFLICT
// *bookstore.Error on field "email".
func (s *Customers) Create(ctx context.Context, c *Customer) error {
	if c.ID == uuid.Nil {
		return errors.New("create customer: no id")
	}
	if c.Role == "" {
		c.Role = "CUSTOMER"
	}
	err := s.db.Pool.QueryRow(ctx, insertCustomer, c.ID, c.EmailIndex, c.EmailEnc, c.NameEnc, c.PhoneEnc,
		c.PasswordHash, c.Role).Scan(&c.CreatedAt, &c.UpdatedAt)
	if isUniqueViolation(err, "customers_email_index_uq") {
		return &bookstore.Error{Code: bookstore.CodeConflict, Field: "email",
			Message: "an account with this email already exists"}
	}
	if err != nil {
		return fmt.Errorf("create customer: %w", err)
	}
	return nil
}

// ByID returns the customer with id, or a NOT_FOUND *bookstore.Error.
func (s *Customers) ByID(ctx context.Context, id uuid.UUID) (*Customer, error) {
	c, err := scanCustomer(s.db.Pool.QueryRow(ctx, `SELECT `+customerCols+` FROM customers WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, bookstore.Errorf(bookstore.CodeNotFound, "no such customer")
	}
	if err != nil {
		return nil, fmt.Errorf("customer %s: %w", id, err)
	}
	return c, nil
}

// ByEmailIndex returns the customer whose email has the blind index idx, or a NOT_FOUND
// *bookstore.Error.
func (s *Customers) ByEmailIndex(ctx context.Context, idx []byte) (*Customer, error) {
	c, err := scanCustomer(s.db.Pool.QueryRow(ctx, `SELECT `+customerCols+` FROM customers WHERE email_index = $1`, idx))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, bookstore.Errorf(bookstore.CodeNotFound, "no such customer")
	}
	if err != nil {
		return nil, fmt.Errorf("customer by email index: %w", err)
	}
	return c, nil
}

// SetPasswordHash replaces a customer's password hash (a password change, or a rehash
// with stronger parameters after a successful login). The caller revokes the customer's
// refresh tokens on a password change.
func (s *Customers) SetPasswordHash(ctx context.Context, id uuid.UUID, hash string) error {
	tag, err := s.db.Pool.Exec(ctx, `UPDATE customers SET password_hash = $2, updated_at = now() WHERE id = $1`, id, hash)
	if err != nil {
		return fmt.Errorf("set password hash of %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return bookstore.Errorf(bookstore.CodeNotFound, "no such customer")
	}
	return nil
}

// ErrPasswordChanged means the password hash is no longer the one the caller read: a
// concurrent password change won.
var ErrPasswordChanged = errors.New("password hash changed meanwhile")

// ReplacePasswordHash sets a new hash only if the stored one is still old (a login's
// rehash must never undo a password change made meanwhile) and reports whether it did.
func (s *Customers) ReplacePasswordHash(ctx context.Context, id uuid.UUID, old, hash string) (bool, error) {
	tag, err := s.db.Pool.Exec(ctx,
		`UPDATE customers SET password_hash = $3, updated_at = now() WHERE id = $1 AND password_hash = $2`, id, old, hash)
	if err != nil {
		return false, fmt.Errorf("replace password hash of %s: %w", id, err)
	}
	return tag.RowsAffected() == 1, nil
}

// ChangePassword replaces the hash old by hash and revokes every session of the customer
// in one transaction, so that no old session survives a password change; it returns the
// revoked sessions. ErrPasswordChanged when the stored hash is no longer old.
func (s *Customers) ChangePassword(ctx context.Context, id uuid.UUID, old, hash string, now time.Time) ([]uuid.UUID, error) {
	var fams []uuid.UUID
	err := s.db.ExecuteTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx,
			`UPDATE customers SET password_hash = $3, updated_at = now() WHERE id = $1 AND password_hash = $2`, id, old, hash)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return ErrPasswordChanged
		}
		fams, err = revokeOwner(ctx, tx, id, now)
		return err
	})
	if errors.Is(err, ErrPasswordChanged) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("change password of %s: %w", id, err)
	}
	return fams, nil
}

// SetRole changes a customer's role ("CUSTOMER" or "ADMIN").
func (s *Customers) SetRole(ctx context.Context, id uuid.UUID, role string) error {
	tag, err := s.db.Pool.Exec(ctx, `UPDATE customers SET role = $2, updated_at = now() WHERE id = $1`, id, role)
	if err != nil {
		return fmt.Errorf("set role of %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return bookstore.Errorf(bookstore.CodeNotFound, "no such customer")
	}
	return nil
}

// AddAddress inserts a. The caller chooses a.ID (the ciphertext is bound to it).
func (s *Customers) AddAddress(ctx context.Context, a *Address) error {
	if a.ID == uuid.Nil {
		return errors.New("add address: no id")
	}
	err := s.db.Pool.QueryRow(ctx,
		`INSERT INTO addresses (id, customer_id, data_enc) VALUES ($1, $2, $3) RETURNING created_at`,
		a.ID, a.CustomerID, a.DataEnc).Scan(&a.CreatedAt)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23503" { // foreign_key_violation
		return bookstore.Errorf(bookstore.CodeNotFound, "no such customer")
	}
	if err != nil {
		return fmt.Errorf("add address: %w", err)
	}
	return nil
}

// ErrAddressBookFull means a customer already has the most addresses allowed.
var ErrAddressBookFull = errors.New("address book full")

// AddAddressCapped inserts a unless its customer already has limit addresses
// (ErrAddressBookFull). The count and the insert share one serializable transaction that
// also locks the customer row, so concurrent inserts cannot all pass the check.
func (s *Customers) AddAddressCapped(ctx context.Context, a *Address, limit int) error {
	if a.ID == uuid.Nil {
		return errors.New("add address: no id")
	}
	err := s.db.ExecuteTx(ctx, func(tx pgx.Tx) error {
		var n int
		err := tx.QueryRow(ctx, `
			SELECT (SELECT count(*) FROM addresses WHERE customer_id = c.id)
			FROM customers c WHERE c.id = $1 FOR UPDATE`, a.CustomerID).Scan(&n)
		if errors.Is(err, pgx.ErrNoRows) {
			return bookstore.Errorf(bookstore.CodeNotFound, "no such customer")
		}
		if err != nil {
			return err
		}
		if n >= limit {
			return ErrAddressBookFull
		}
		return tx.QueryRow(ctx,
			`INSERT INTO addresses (id, customer_id, data_enc) VALUES ($1, $2, $3) RETURNING created_at`,
			a.ID, a.CustomerID, a.DataEnc).Scan(&a.CreatedAt)
	})
	var be *bookstore.Error
	if errors.Is(err, ErrAddressBookFull) || errors.As(err, &be) {
		return err
	}
	if err != nil {
		return fmt.Errorf("add address: %w", err)
	}
	return nil
}

// Addresses returns a customer's addresses, oldest first. A customer has a handful, so
// there is no pagination.
func (s *Customers) Addresses(ctx context.Context, customerID uuid.UUID) ([]*Address, error) {
	rows, err := s.db.Pool.Query(ctx, `
		SELECT id, customer_id, data_enc, created_at FROM addresses
		WHERE customer_id = $1 ORDER BY created_at, id`, customerID)
	if err != nil {
		return nil, fmt.Errorf("addresses of %s: %w", customerID, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*Address, error) {
		var a Address
		err := row.Scan(&a.ID, &a.CustomerID, &a.DataEnc, &a.CreatedAt)
		return &a, err
	})
	if err != nil {
		return nil, fmt.Errorf("addresses of %s: %w", customerID, err)
	}
	return out, nil
}

// DeleteAddress deletes one of a customer's addresses; an address of another customer is
// NOT_FOUND, like a missing one.
func (s *Customers) DeleteAddress(ctx context.Context, customerID, id uuid.UUID) error {
	tag, err := s.db.Pool.Exec(ctx, `DELETE FROM addresses WHERE id = $1 AND customer_id = $2`, id, customerID)
	if err != nil {
		return fmt.Errorf("delete address %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return bookstore.Errorf(bookstore.CodeNotFound, "no such address")
	}
	return nil
}

// isUniqueViolation reports whether err is a unique violation (SQLSTATE 23505) of the
// named constraint. CockroachDB and PostgreSQL both report the constraint's name.
func isUniqueViolation(err error, constraint string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" &&
		(pgErr.ConstraintName == constraint || strings.Contains(pgErr.Message, `"`+constraint+`"`))
}

// CustomersAfter returns up to limit customers with ids after the given one, in id order:
// a keyset scan of the whole table (key rotation jobs).
func (s *Customers) CustomersAfter(ctx context.Context, after uuid.UUID, limit int) ([]*Customer, error) {
	rows, err := s.db.Pool.Query(ctx, `SELECT `+customerCols+` FROM customers WHERE id > $1 ORDER BY id LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("scan customers: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*Customer, error) { return scanCustomer(row) })
	if err != nil {
		return nil, fmt.Errorf("scan customers: %w", err)
	}
	return out, nil
}

// ReplaceCiphertexts swaps a customer's encrypted fields for re-wrapped ones, only if
// they still hold the values read (old): a concurrent profile change wins over a key
// rotation job, which then has nothing to do for that row. It reports whether the row
// was updated.
func (s *Customers) ReplaceCiphertexts(ctx context.Context, old, updated *Customer) (bool, error) {
	tag, err := s.db.Pool.Exec(ctx, `
		UPDATE customers SET email_enc = $2, name_enc = $3, phone_enc = $4
		WHERE id = $1 AND email_enc = $5 AND name_enc = $6 AND phone_enc IS NOT DISTINCT FROM $7`,
		old.ID, updated.EmailEnc, updated.NameEnc, updated.PhoneEnc, old.EmailEnc, old.NameEnc, old.PhoneEnc)
	if err != nil {
		return false, fmt.Errorf("replace ciphertexts of %s: %w", old.ID, err)
	}
	return tag.RowsAffected() == 1, nil
}

// AddressesAfter returns up to limit addresses with ids after the given one, in id order.
func (s *Customers) AddressesAfter(ctx context.Context, after uuid.UUID, limit int) ([]*Address, error) {
	rows, err := s.db.Pool.Query(ctx, `
		SELECT id, customer_id, data_enc, created_at FROM addresses WHERE id > $1 ORDER BY id LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("scan addresses: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*Address, error) {
		var a Address
		err := row.Scan(&a.ID, &a.CustomerID, &a.DataEnc, &a.CreatedAt)
		return &a, err
	})
	if err != nil {
		return nil, fmt.Errorf("scan addresses: %w", err)
	}
	return out, nil
}

// ReplaceAddressCiphertext swaps an address's ciphertext if it still holds old.
func (s *Customers) ReplaceAddressCiphertext(ctx context.Context, id uuid.UUID, old, updated []byte) (bool, error) {
	tag, err := s.db.Pool.Exec(ctx, `UPDATE addresses SET data_enc = $2 WHERE id = $1 AND data_enc = $3`, id, updated, old)
	if err != nil {
		return false, fmt.Errorf("replace ciphertext of address %s: %w", id, err)
	}
	return tag.RowsAffected() == 1, nil
}
