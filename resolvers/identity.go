package resolvers

import (
	"context"
	"errors"
	"strings"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/auth"
	"github.com/shopfront/bookstore/graph/model"
	"github.com/shopfront/bookstore/identity"
)

const (
	typeCustomer = "Customer"
	typeAddress  = "Address"
)

// userFacing lists the codes a mutation reports in its payload's userErrors: failures the
// user can act on. Anything else (unauthenticated callers, internal errors) stays a
// top-level error with extensions.code.
var userFacing = map[string]bool{
	bookstore.CodeBadUserInput:      true,
	bookstore.CodeConflict:          true,
	bookstore.CodeNotFound:          true,
	bookstore.CodeOutOfStock:        true,
	bookstore.CodeInsufficientStock: true,
	bookstore.CodeUnauthenticated:   true, // wrong password, spent refresh token
	auth.CodeRateLimited:            true,
}

// userErrors splits err into payload userErrors (expected business failures) and a
// top-level error (everything else). prefix is the input path the error's field hangs
// under ("input" for input objects, "" for plain arguments).
func userErrors(err error, prefix string) ([]*model.UserError, error) {
	var be *bookstore.Error
	if !errors.As(err, &be) || !userFacing[be.Code] {
		return nil, err
	}
	ue := &model.UserError{Code: be.Code, Message: be.Message}
	if be.Field != "" {
		var path []string
		if prefix != "" {
			path = append(path, prefix)
		}
		ue.Field = append(path, strings.Split(be.Field, ".")...)
	}
	return []*model.UserError{ue}, nil
}

func authPayload(s *identity.Session, err error) (*model.AuthPayload, error) {
	if err != nil {
		ues, err := userErrors(err, "input")
		return &model.AuthPayload{UserErrors: ues}, err
	}
	exp := s.AccessTokenExpiresAt
	return &model.AuthPayload{
		AccessToken:  &s.AccessToken,
		RefreshToken: &s.RefreshToken,
		ExpiresAt:    &exp,
		Customer:     s.Customer,
		UserErrors:   []*model.UserError{},
	}, nil
}

// customerNode resolves node(id:) for a Customer: visible to that customer and to admins;
// anyone else gets NOT_FOUND, exactly as for an id that does not exist, so ids cannot be
// probed.
func (r *queryResolver) customerNode(ctx context.Context, id uuid.UUID, gid string) (bookstore.Node, error) {
	who, ok := auth.FromContext(ctx)
	if !ok || (who.CustomerID != id && !who.IsAdmin()) {
		return nil, notFound("no object with id %s", gid)
	}
	c, err := r.Identity.Customer(ctx, id)
	if err != nil || c == nil {
		return nil, orNotFound(err, "no object with id %s", gid)
	}
	return c, nil
}

// addressNode resolves node(id:) for an Address: only among the caller's own addresses.
func (r *queryResolver) addressNode(ctx context.Context, id uuid.UUID, gid string) (bookstore.Node, error) {
	who, ok := auth.FromContext(ctx)
	if !ok {
		return nil, notFound("no object with id %s", gid)
	}
	as, err := r.Identity.Addresses(ctx, who.CustomerID)
	if err != nil {
		return nil, err
	}
	for _, a := range as {
		if a.ID == id {
			return a, nil
		}
	}
	return nil, notFound("no object with id %s", gid)
}

// requireAdmin returns UNAUTHENTICATED without a valid token and FORBIDDEN for a
// customer.
func requireAdmin(ctx context.Context) error {
	_, err := auth.RequireRole(ctx, auth.RoleAdmin)
	return err
}

// bookAfterWrite re-reads a book after a mutation changed it (not through the request's
// loader, which may hold the old row).
func (r *mutationResolver) bookAfterWrite(ctx context.Context, id uuid.UUID, err error) (*model.BookPayload, error) {
	if err != nil {
		ues, err := userErrors(err, "")
		return &model.BookPayload{UserErrors: ues}, err
	}
	bs, err := r.DB.Books.ByIDs(ctx, []uuid.UUID{id})
	if err != nil {
		return nil, err
	}
	if len(bs) == 0 {
		return nil, notFound("no book with this id")
	}
	return &model.BookPayload{Book: bs[0], UserErrors: []*model.UserError{}}, nil
}
