package resolvers

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/auth"
	"github.com/shopfront/bookstore/cart"
	"github.com/shopfront/bookstore/graph/model"
	"github.com/shopfront/bookstore/loaders"
)

// The cart's data is read through the request's loaders.
var live loaders.Catalog

// cartUserFacing are the codes the cart mutations report in userErrors.
var cartUserFacing = map[string]bool{
	bookstore.CodeBadUserInput:          true,
	bookstore.CodeOutOfStock:            true,
	bookstore.CodeInsufficientStock:     true,
	bookstore.CodeQuantityLimit:         true,
	bookstore.CodeLineLimit:             true,
	bookstore.CodeUnknownBook:           true,
	bookstore.CodeInvalidDiscountCode:   true,
	bookstore.CodeDiscountNotApplicable: true,
	bookstore.CodeCartNotFound:          true,
	// Over CART_CREATE_PER_HOUR: a userError like register's throttle (the README's rule
	// for mutations), with the wait in its message.
	auth.CodeRateLimited: true,
}

// caller is the signed-in customer, or uuid.Nil for a guest. A customer whose token
// expired is a guest here: their cart answers CART_NOT_FOUND until they refresh.
func caller(ctx context.Context) uuid.UUID {
	if who, ok := auth.FromContext(ctx); ok {
		return who.CustomerID
	}
	return uuid.Nil
}

func toUserError(e *bookstore.Error, prefix string) *model.UserError {
	ue := &model.UserError{Code: e.Code, Message: e.Message}
	if e.Field != "" {
		if prefix != "" {
			ue.Field = append(ue.Field, prefix)
		}
		ue.Field = append(ue.Field, strings.Split(e.Field, ".")...)
	}
	return ue
}

// cartPayload shows the cart after a mutation with its problems. When the mutation was
// refused as a whole (invalid input) the payload still carries the unchanged cart.
func (r *Resolver) cartPayload(ctx context.Context, cartID, prefix string, res *cart.Result, err error) (*model.CartPayload, error) {
	out := &model.CartPayload{UserErrors: []*model.UserError{}}
	if err != nil {
		var be *bookstore.Error
		if !errors.As(err, &be) || !cartUserFacing[be.Code] {
			return nil, err
		}
		if be.Code == bookstore.CodeCartNotFound {
			// Always the cartId argument (the one shared error value has no field).
			out.UserErrors = append(out.UserErrors, &model.UserError{Code: be.Code, Field: []string{"cartId"}, Message: be.Message})
			return out, nil
		}
		out.UserErrors = append(out.UserErrors, toUserError(be, prefix))
		if cartID == "" {
			return out, nil
		}
		c, gerr := r.Carts.Get(ctx, cartID, caller(ctx))
		if gerr != nil {
			return out, nil
		}
		res = &cart.Result{Cart: c}
	}
	for _, p := range res.Problems {
		out.UserErrors = append(out.UserErrors, toUserError(p, prefix))
	}
	v, err := r.Carts.View(ctx, live, res.Cart)
	if err != nil {
		return nil, err
	}
	out.Cart = v
	return out, nil
}

func (r *Resolver) cartLines(field string, in []*model.CartLineInput) ([]bookstore.CartLineInput, error) {
	if max := r.Carts.Limits().MaxLines; len(in) > max {
		return nil, &bookstore.Error{Code: bookstore.CodeLineLimit, Field: field, Message: fmt.Sprintf("a cart holds at most %d lines", max)}
	}
	out := make([]bookstore.CartLineInput, len(in))
	for i, l := range in {
		id, err := parseTypedID(fmt.Sprintf("%s.%d.bookId", field, i), typeBook, l.BookID)
		if err != nil {
			return nil, err
		}
		out[i] = bookstore.CartLineInput{BookID: id, Quantity: l.Quantity}
	}
	return out, nil
}

func (r *mutationResolver) cartCreate(ctx context.Context, in model.CartCreateInput) (*model.CartPayload, error) {
	lines, err := r.cartLines("lines", in.Lines)
	var res *cart.Result
	if err == nil {
		res, err = r.Carts.Create(ctx, live, caller(ctx), lines, in.DiscountCodes)
	}
	return r.cartPayload(ctx, "", "input", res, err)
}

func (r *mutationResolver) cartLinesAdd(ctx context.Context, cartID string, in []*model.CartLineInput) (*model.CartPayload, error) {
	lines, err := r.cartLines("lines", in)
	var res *cart.Result
	if err == nil {
		res, err = r.Carts.AddLines(ctx, live, cartID, caller(ctx), lines)
	}
	return r.cartPayload(ctx, cartID, "", res, err)
}

func (r *mutationResolver) cartLinesUpdate(ctx context.Context, cartID string, in []*model.CartLineInput) (*model.CartPayload, error) {
	lines, err := r.cartLines("lines", in)
	var res *cart.Result
	if err == nil {
		res, err = r.Carts.UpdateLines(ctx, live, cartID, caller(ctx), lines)
	}
	return r.cartPayload(ctx, cartID, "", res, err)
}

func (r *mutationResolver) cartLinesRemove(ctx context.Context, cartID string, bookIDs []string) (*model.CartPayload, error) {
	var err error
	var res *cart.Result
	ids := make([]uuid.UUID, len(bookIDs))
	if max := r.Carts.Limits().MaxLines; len(bookIDs) > max {
		err = &bookstore.Error{Code: bookstore.CodeLineLimit, Field: "bookIds", Message: fmt.Sprintf("at most %d books at once", max)}
	}
	for i := 0; err == nil && i < len(bookIDs); i++ {
		ids[i], err = parseTypedID(fmt.Sprintf("bookIds.%d", i), typeBook, bookIDs[i])
	}
	if err == nil {
		res, err = r.Carts.RemoveLines(ctx, cartID, caller(ctx), ids)
	}
	return r.cartPayload(ctx, cartID, "", res, err)
}

func (r *mutationResolver) cartDiscountCodesUpdate(ctx context.Context, cartID string, codes []string) (*model.CartPayload, error) {
	res, err := r.Carts.SetCodes(ctx, live, cartID, caller(ctx), codes)
	return r.cartPayload(ctx, cartID, "", res, err)
}

// cart answers cart(id:): null with NOT_FOUND for a cart the caller may not see.
func (r *queryResolver) cart(ctx context.Context, id string) (*cart.View, error) {
	c, err := r.Carts.Get(ctx, id, caller(ctx))
	if errors.Is(err, bookstore.ErrCartNotFound) {
		return nil, notFound("no cart with this id")
	}
	if err != nil {
		return nil, err
	}
	return r.Carts.View(ctx, live, c)
}

// customerCart answers me { cart }: only for the customer themself.
func (r *customerResolver) customerCart(ctx context.Context, id uuid.UUID) (*cart.View, error) {
	if caller(ctx) != id {
		return nil, nil
	}
	c, err := r.Carts.Current(ctx, id)
	if err != nil || c == nil {
		return nil, err
	}
	return r.Carts.View(ctx, live, c)
}

// cartCost prices the cart for a shipping method and destination.
func (r *cartResolver) cartCost(_ context.Context, v *cart.View, method, country *string) (*bookstore.Cost, error) {
	var m *bookstore.ShippingMethod
	if method != nil {
		if m = r.Carts.ShippingMethod(*method); m == nil {
			return nil, bookstore.InvalidField("shippingMethod", "unknown shipping method %q", truncate(*method, 20))
		}
	}
	c := ""
	if country != nil {
		c = strings.ToUpper(*country)
		if len(c) != 2 || strings.ContainsFunc(c, func(r rune) bool { return r < 'A' || r > 'Z' }) {
			return nil, bookstore.InvalidField("country", "must be an ISO 3166-1 alpha-2 code")
		}
	}
	cost := v.Cost(m, c)
	return &cost, nil
}

// mergeCart runs after a successful login or register with a cartId: the guest cart
// merges into the customer's. Sign-in has succeeded by then, so a failed merge is logged
// and the guest cart stays as it was (Merge restores it).
func (r *mutationResolver) mergeCart(ctx context.Context, p *model.AuthPayload, err error, cartID *string) (*model.AuthPayload, error) {
	if err != nil || p == nil || p.Customer == nil || cartID == nil || *cartID == "" {
		return p, err
	}
	if _, merr := r.Carts.Merge(ctx, live, *cartID, p.Customer.ID); merr != nil {
		r.Log.ErrorContext(ctx, "merge guest cart at sign-in", "err", merr)
	}
	return p, nil
}
