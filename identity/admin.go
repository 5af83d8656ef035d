package identity

import (
	"context"
	"fmt"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/auth"
)

// SetRole gives the account with this email a role (`bookstore admin create` promotes an
// account to ADMIN). The account's existing access tokens keep their old role until they
// expire (at most the access-token TTL); its refresh tokens issue the new one.
func (s *Service) SetRole(ctx context.Context, email string, role auth.Role) (*Customer, error) {
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
	if row == nil {
		return nil, bookstore.Errorf(bookstore.CodeNotFound, "no account with this email")
	}
	if err := s.cfg.DB.Customers.SetRole(ctx, row.ID, string(role)); err != nil {
		return nil, fmt.Errorf("set role: %w", err)
	}
	row.Role = string(role)
	return s.decryptCustomer(row)
}
