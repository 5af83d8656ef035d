package identity

import (
	"context"
	"fmt"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/auth"
)

// CreateAdmin makes the account with in.Email an ADMIN (`bookstore admin create`): it
// registers the account, or, when the email already has one, promotes it only if
// in.Password is that account's password. Anyone can register any email through the API,
// so promoting an existing account on the email alone would hand ADMIN to whoever
// registered it first.
func (s *Service) CreateAdmin(ctx context.Context, in RegisterInput) (*Customer, error) {
	_, err := s.Register(ctx, in, "cli")
	switch bookstore.ErrorCode(err) {
	case "":
	case bookstore.CodeConflict:
		if err := s.checkPassword(ctx, in.Email, in.Password); err != nil {
			return nil, bookstore.Errorf(bookstore.CodeConflict,
				"an account with this email exists and the given password is not its password: refusing to promote it")
		}
	default:
		return nil, err
	}
	return s.setRole(ctx, in.Email, auth.RoleAdmin)
}

// checkPassword verifies an account's password without throttling (for the CLI, whose
// caller already holds the database).
func (s *Service) checkPassword(ctx context.Context, email, password string) error {
	norm, err := validateEmail(email)
	if err != nil {
		return err
	}
	row, err := s.cfg.DB.Customers.ByEmailIndex(ctx, s.cfg.Index.Email(norm))
	if err != nil {
		return err
	}
	ok, _, err := s.cfg.Hasher.Verify(ctx, auth.NormalizePassword(password), row.PasswordHash)
	if err != nil {
		return err
	}
	if !ok {
		return errBadCredentials
	}
	return nil
}

// setRole changes the role of the account with this email and revokes its sessions, so
// that no refresh token keeps minting access tokens with the old role and the access
// tokens already issued stop working at once (Revocations).
func (s *Service) setRole(ctx context.Context, email string, role auth.Role) (*Customer, error) {
	if !role.Valid() {
		return nil, bookstore.InvalidField("role", "unknown role %q", role)
	}
	norm, err := validateEmail(email)
	if err != nil {
		return nil, err
	}
	row, err := s.cfg.DB.Customers.ByEmailIndex(ctx, s.cfg.Index.Email(norm))
	if err != nil {
		return nil, err
	}
	if err := s.cfg.DB.Customers.SetRole(ctx, row.ID, string(role)); err != nil {
		return nil, fmt.Errorf("set role: %w", err)
	}
	if err := s.LogoutAll(ctx, row.ID); err != nil {
		return nil, err
	}
	row.Role = string(role)
	return s.decryptCustomer(row)
}
