package resolvers

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/google/uuid"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/auth"
	"github.com/shopfront/bookstore/checkout"
	"github.com/shopfront/bookstore/graph/model"
	"github.com/shopfront/bookstore/identity"
	"github.com/shopfront/bookstore/loaders"
	"github.com/shopfront/bookstore/orders"
	"github.com/shopfront/bookstore/payment"
	"github.com/shopfront/bookstore/shipping"
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
		forgetStock(ctx, res.Order) // taken (or given back on a failed payment)
		if selects(graphql.GetFieldContext(ctx), "order", "lines", "book") {
			primeBooks(ctx, res.Order)
		}
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

// customerOrders: only the customer themself reads their orders (not admins: an
// order's contact data is opened only for its owner).
func (r *customerResolver) customerOrders(ctx context.Context, c *identity.Customer, first *int, after *string, status *bookstore.OrderStatus) (*model.OrderConnection, error) {
	if !mayRead(ctx, c, false) {
		return nil, notFound("no such customer")
	}
	n := 20
	if first != nil {
		n = *first
	}
	p, err := r.OrderService.List(ctx, c.ID, status, n, deref(after))
	if err != nil {
		return nil, err
	}
	out := &model.OrderConnection{Edges: make([]*model.OrderEdge, len(p.Orders)),
		PageInfo: &bookstore.PageInfo{HasNextPage: p.HasNextPage, HasPreviousPage: deref(after) != ""}}
	for i, o := range p.Orders {
		out.Edges[i] = &model.OrderEdge{Cursor: p.Cursors[i], Node: o}
	}
	if len(p.Cursors) > 0 {
		out.PageInfo.StartCursor, out.PageInfo.EndCursor = &p.Cursors[0], &p.Cursors[len(p.Cursors)-1]
	}
	return out, nil
}

// orderUserFacing are the codes order mutations answer in userErrors.
var orderUserFacing = map[string]bool{
	bookstore.CodeBadUserInput: true, bookstore.CodeNotFound: true,
	orders.CodeNotCancellable: true, orders.CodeInvalidTransition: true,
}

func orderPayload(o *bookstore.Order, err error) (*model.OrderPayload, error) {
	out := &model.OrderPayload{Order: o, UserErrors: []*model.UserError{}}
	if err == nil {
		return out, nil
	}
	var be *bookstore.Error
	if !errors.As(err, &be) || !orderUserFacing[be.Code] {
		return nil, err
	}
	out.UserErrors = append(out.UserErrors, toUserError(be, ""))
	return out, nil
}

func orderCaller(ctx context.Context) orders.Caller {
	who, ok := auth.FromContext(ctx)
	if !ok {
		return orders.Caller{}
	}
	return orders.Caller{Customer: who.CustomerID, Admin: who.IsAdmin()}
}

func (r *mutationResolver) orderCancel(ctx context.Context, gid string, reason *string) (*model.OrderPayload, error) {
	if _, err := auth.Require(ctx); err != nil {
		return nil, err
	}
	id, err := parseTypedID("id", typeOrder, gid)
	if err != nil {
		return orderPayload(nil, err)
	}
	o, err := r.OrderService.Cancel(ctx, orderCaller(ctx), id, deref(reason))
	if bookstore.ErrorCode(err) == bookstore.CodeNotFound {
		err = &bookstore.Error{Code: bookstore.CodeNotFound, Field: "id", Message: "no such order"}
	}
	if o != nil {
		forgetStock(ctx, o) // restocked
	}
	return orderPayload(o, err)
}

func (r *mutationResolver) orderMarkShipped(ctx context.Context, gid, carrier, tracking string) (*model.OrderPayload, error) {
	if err := requireAdmin(ctx); err != nil {
		return nil, err
	}
	id, err := parseTypedID("id", typeOrder, gid)
	if err != nil {
		return orderPayload(nil, err)
	}
	o, err := r.OrderService.MarkShipped(ctx, orderCaller(ctx), id, carrier, tracking)
	if bookstore.ErrorCode(err) == bookstore.CodeNotFound {
		err = &bookstore.Error{Code: bookstore.CodeNotFound, Field: "id", Message: "no such order"}
	}
	return orderPayload(o, err)
}

// Events and shipments of an order: it was authorized when it was resolved (every path
// to an Order goes through checkout.Find, the customer's own list or a mutation on it).
func (r *orderResolver) events(ctx context.Context, o *bookstore.Order) ([]*bookstore.OrderEvent, error) {
	evs, err := loaders.For(ctx).OrderEvents.Load(ctx, o.ID)()
	if err != nil {
		return nil, err
	}
	out := make([]*bookstore.OrderEvent, len(evs))
	for i := range evs {
		out[i] = &evs[i]
	}
	return out, nil
}

func (r *orderResolver) shipments(ctx context.Context, o *bookstore.Order) ([]*shipping.Shipment, error) {
	s, err := loaders.For(ctx).Shipments.Load(ctx, o.ID)()
	if s == nil {
		s = []*shipping.Shipment{}
	}
	return s, err
}

// eventDetail reads one string of an event's detail.
func eventDetail(e *bookstore.OrderEvent, key string) *string {
	if len(e.Detail) == 0 {
		return nil
	}
	var m map[string]any
	if json.Unmarshal(e.Detail, &m) != nil {
		return nil
	}
	if v, ok := m[key].(string); ok && v != "" {
		return &v
	}
	return nil
}

// primeBooks loads the order's books into the request's loader on a context without the
// request's deadline: a checkout may spend most of that deadline waiting for the PSP, and
// a paid order must not come back with errors on its lines' books because the deadline
// passed while the payload was being written.
func primeBooks(ctx context.Context, o *bookstore.Order) {
	ids := make([]uuid.UUID, len(o.Lines))
	for i, l := range o.Lines {
		ids[i] = l.BookID
	}
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_, _ = loaders.For(ctx).Book.LoadMany(lctx, ids)()
}

// forgetStock drops the order's books' stock from the request's stock loader: an
// earlier field of the request may have read it (the book loader reads it with the
// books), and this mutation changed it.
func forgetStock(ctx context.Context, o *bookstore.Order) {
	l := loaders.For(ctx)
	for _, line := range o.Lines {
		l.Stock.Clear(ctx, line.BookID)
	}
}

// selects reports whether the field's selection asks for the field path (through
// fragments; aliases do not matter). Without a field context it says yes.
func selects(fc *graphql.FieldContext, path ...string) bool {
	if fc == nil || fc.Field.Field == nil {
		return true
	}
	return selectsIn(fc.Field.Selections, path)
}

func selectsIn(set ast.SelectionSet, path []string) bool {
	if len(path) == 0 {
		return true
	}
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			if s.Name == path[0] && selectsIn(s.SelectionSet, path[1:]) {
				return true
			}
		case *ast.InlineFragment:
			if selectsIn(s.SelectionSet, path) {
				return true
			}
		case *ast.FragmentSpread:
			if s.Definition == nil || selectsIn(s.Definition.SelectionSet, path) {
				return true
			}
		}
	}
	return false
}
