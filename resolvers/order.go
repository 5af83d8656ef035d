package resolvers

import (
	"context"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/checkout"
	"github.com/shopfront/bookstore/graph/model"
	"github.com/shopfront/bookstore/loaders"
	"github.com/shopfront/bookstore/payment"
)

const typeOrder = "Order"

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func (r *mutationResolver) checkout(ctx context.Context, in model.CheckoutInput) (*model.CheckoutPayload, error) {
	ci := checkout.Input{CartID: in.CartID, IdempotencyKey: in.IdempotencyKey, Email: deref(in.Email),
		ShippingMethod: in.ShippingMethod}
	if a := in.ShippingAddress; a != nil {
		ci.ShippingAddress = bookstore.Address{Recipient: a.Recipient, Line1: a.Line1, Line2: deref(a.Line2),
			City: a.City, Region: deref(a.Region), PostalCode: deref(a.PostalCode), Country: a.Country, Phone: deref(a.Phone)}
	}
	if p := in.Payment; p != nil {
		ci.Method, ci.Token = payment.Method(p.Method), p.Token
	}
	if in.ExpectedTotalCents != nil {
		t := int64(*in.ExpectedTotalCents)
		ci.ExpectedTotalCents = &t
	}
	res, err := r.Checkouts.Checkout(ctx, caller(ctx), ci)
	if err != nil {
		return nil, err
	}
	out := &model.CheckoutPayload{Order: res.Order, UserErrors: []*model.UserError{}}
	if res.Order != nil {
		out.AccessToken = &res.AccessToken
	}
	if res.TotalCents != nil {
		t := int(*res.TotalCents)
		out.TotalCents = &t
	}
	for _, p := range res.Problems {
		out.UserErrors = append(out.UserErrors, toUserError(p, "input"))
	}
	return out, nil
}

func (r *queryResolver) order(ctx context.Context, gid string, email, token *string) (*bookstore.Order, error) {
	id, err := parseTypedID("id", typeOrder, gid)
	if err != nil {
		return nil, err
	}
	return r.findOrder(ctx, id, gid, deref(email), deref(token))
}

func (r *Resolver) findOrder(ctx context.Context, id uuid.UUID, gid, email, token string) (*bookstore.Order, error) {
	o, err := r.Checkouts.Find(ctx, id, caller(ctx), email, token)
	if bookstore.ErrorCode(err) == bookstore.CodeNotFound {
		return nil, notFound("no order with id %s", gid)
	}
	return o, err
}

func (r *orderLineResolver) book(ctx context.Context, l *bookstore.OrderLine) (*bookstore.Book, error) {
	return loaders.For(ctx).Book.Load(ctx, l.BookID)()
}

func paymentStatus(p *bookstore.OrderPayment) model.PaymentStatus {
	s := model.PaymentStatus(p.Status)
	if !s.IsValid() {
		return model.PaymentStatusPending
	}
	return s
}
