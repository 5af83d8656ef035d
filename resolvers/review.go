package resolvers

import (
	"context"
	"errors"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/auth"
	"github.com/shopfront/bookstore/graph/model"
)

// reviewUserFacing are the codes reviewCreate answers in userErrors.
var reviewUserFacing = map[string]bool{
	bookstore.CodeBadUserInput:    true,
	bookstore.CodeNotFound:        true,
	bookstore.CodeNotPurchased:    true,
	bookstore.CodeAlreadyReviewed: true,
}

// reviewCreate: customers only (a staff account is not a buyer); the purchase and
// once-per-book rules are checked in the store's transaction that writes the review.
func (r *mutationResolver) reviewCreate(ctx context.Context, in model.ReviewCreateInput) (*model.ReviewCreatePayload, error) {
	who, err := auth.RequireRole(ctx, auth.RoleCustomer)
	if err != nil {
		return nil, err
	}
	nr := bookstore.NewReview{CustomerID: who.CustomerID, Rating: in.Rating, Title: in.Title, Body: in.Body}
	var invalid []error
	if nr.BookID, err = parseTypedID("bookId", typeBook, in.BookID); err != nil {
		invalid = append(invalid, err)
	}
	if err := nr.Validate(); err != nil {
		invalid = append(invalid, err)
	}
	if len(invalid) > 0 {
		return reviewPayload(errors.Join(invalid...))
	}
	c, err := r.Identity.Customer(ctx, who.CustomerID)
	if err != nil {
		return nil, err
	}
	nr.ReviewerName = bookstore.ReviewerName(c.Name)
	rev, err := r.DB.Reviews.Create(ctx, nr)
	if err != nil {
		return reviewPayload(err)
	}
	// Read after the write, not through the request's loader (it may hold the old row).
	bs, err := r.DB.Books.ByIDs(ctx, []uuid.UUID{nr.BookID})
	if err != nil {
		return nil, err
	}
	out := &model.ReviewCreatePayload{Review: rev, UserErrors: []*model.UserError{}}
	if len(bs) > 0 {
		out.Book = bs[0]
	}
	return out, nil
}

// reviewPayload turns err into the payload's userErrors (one per invalid field, under
// "input"), or returns it as a top-level error when any part of it is not user-facing.
func reviewPayload(err error) (*model.ReviewCreatePayload, error) {
	out := &model.ReviewCreatePayload{UserErrors: []*model.UserError{}}
	for _, e := range flatten(err) {
		var be *bookstore.Error
		if !errors.As(e, &be) || !reviewUserFacing[be.Code] {
			return nil, err
		}
		out.UserErrors = append(out.UserErrors, toUserError(be, "input"))
	}
	return out, nil
}

// flatten lists the errors joined in err (errors.Join, nested too), or err alone.
func flatten(err error) []error {
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return []error{err}
	}
	var out []error
	for _, e := range j.Unwrap() {
		out = append(out, flatten(e)...)
	}
	return out
}
