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
//
// An error joining several (errors.Join: every invalid field of a form) gives one
// userError each; if any of them is not user-facing, the whole is a top-level error.
func userErrors(err error, prefix string) ([]*model.UserError, error) {
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	out := make([]*model.UserError, 0, len(errs))
	for _, e := range errs {
		var be *bookstore.Error
		if !errors.As(e, &be) || !userFacing[be.Code] {
			return nil, e
		}
		ue := &model.UserError{Code: be.Code, Message: be.Message}
		if be.Field != "" {
			var path []string
			if prefix != "" {
				path = append(path, prefix)
			}
			ue.Field = append(path, strings.Split(be.Field, ".")...)
		}
		out = append(out, ue)
	}
	return out, nil
}

// mayRead reports whether the caller may read a Customer's personal fields: the customer
// themself (signed in, or just signed in by this very mutation), or, when admins is
// true, an admin. Checked on each field rather than where a Customer is fetched, so that
// no path that returns a Customer (node, me, auth payloads, and any later one: a
// review's author, an order's customer) can leak them.
func mayRead(ctx context.Context, c *identity.Customer, admins bool) bool {
	if c.OwnSession() {
		return true
	}
	who, ok := auth.FromContext(ctx)
	return ok && (who.CustomerID == c.ID || admins && who.IsAdmin())
}

// customerField returns v when the caller may read c's personal fields, else NOT_FOUND,
// as for an object that does not exist.
func customerField[T any](ctx context.Context, c *identity.Customer, admins bool, v T) (T, error) {
	if !mayRead(ctx, c, admins) {
		var zero T
		return zero, notFound("no such customer")
	}
	return v, nil
}

// addresses resolves Customer.addresses: the owner only, admins included (the schema
// says so: an admin has no business reading a customer's addresses through node(id:)).
func (r *customerResolver) addresses(ctx context.Context, c *identity.Customer) ([]*identity.Address, error) {
	if !mayRead(ctx, c, false) {
		return nil, notFound("no such customer")
	}
	return r.Identity.Addresses(ctx, c.ID)
}

// deleteAddress: a malformed id, or another customer's or a missing address, is a
// userError on "id".
func (r *mutationResolver) deleteAddress(ctx context.Context, id string) (*model.DeletePayload, error) {
	who, err := auth.Require(ctx)
	if err != nil {
		return nil, err
	}
	aid, err := parseTypedID("id", typeAddress, id)
	if err == nil {
		err = r.Identity.DeleteAddress(ctx, who.CustomerID, aid)
	}
	if err != nil {
		ues, err := userErrors(err, "")
		for _, ue := range ues {
			if ue.Field == nil {
				ue.Field = []string{"id"}
			}
		}
		return &model.DeletePayload{UserErrors: ues}, err
	}
	return &model.DeletePayload{DeletedID: &id, UserErrors: []*model.UserError{}}, nil
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
