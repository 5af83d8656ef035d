package resolvers

import (
	"context"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/auth"
	"github.com/shopfront/bookstore/graph/model"
	"github.com/shopfront/bookstore/loaders"
)

// stockChange runs an admin's stock change (set or adjust) for the book with global id
// bookID, after checking the role, the id and the reason, and answers with the book as it
// is now and the ledger entry.
func (r *mutationResolver) stockChange(ctx context.Context, bookID, reason string, change func(id uuid.UUID, reason string, actor *uuid.UUID) (*bookstore.StockMovement, error)) (*model.StockPayload, error) {
	who, err := auth.RequireRole(ctx, auth.RoleAdmin)
	if err != nil {
		return nil, err
	}
	bid, err := parseTypedID("bookId", typeBook, bookID)
	var m *bookstore.StockMovement
	if err == nil {
		reason, err = bookstore.CleanStockReason("reason", reason)
	}
	if err == nil {
		actor := who.CustomerID
		m, err = change(bid, reason, &actor)
	}
	ues, err := userErrors(err, "")
	if err != nil {
		return nil, err
	}
	out := &model.StockPayload{Movement: m, UserErrors: ues}
	if out.UserErrors == nil {
		out.UserErrors = []*model.UserError{}
	}
	if bid != uuid.Nil {
		// The book as it is now, also after a refusal: a CONFLICT's client needs the
		// current stock to retry. The request's stock loader may hold what an earlier
		// field of this request read or changed: forget it.
		loaders.For(ctx).Stock.Clear(ctx, bid)
		bs, err := r.DB.Books.ByIDs(ctx, []uuid.UUID{bid})
		if err != nil {
			return nil, err
		}
		if len(bs) > 0 {
			out.Book = bs[0]
		}
	}
	return out, nil
}

func (r *mutationResolver) setStock(ctx context.Context, bookID string, quantity, expected int, reason *string) (*model.StockPayload, error) {
	why := "recount"
	if reason != nil {
		why = *reason
	}
	return r.stockChange(ctx, bookID, why, func(id uuid.UUID, reason string, actor *uuid.UUID) (*bookstore.StockMovement, error) {
		return r.DB.Inventory.SetStock(ctx, id, int64(quantity), int64(expected), reason, actor)
	})
}

func (r *mutationResolver) adjustStock(ctx context.Context, bookID string, delta int, reason string) (*model.StockPayload, error) {
	return r.stockChange(ctx, bookID, reason, func(id uuid.UUID, reason string, actor *uuid.UUID) (*bookstore.StockMovement, error) {
		return r.DB.Inventory.Adjust(ctx, id, int64(delta), reason, actor)
	})
}

func (r *queryResolver) stockMovements(ctx context.Context, bookID string, first *int, after *string) (*bookstore.StockMovementPage, error) {
	if err := requireAdmin(ctx); err != nil {
		return nil, err
	}
	bid, err := parseTypedID("bookId", typeBook, bookID)
	if err != nil {
		return nil, err
	}
	n, err := pageSize(first)
	if err != nil {
		return nil, err
	}
	cur, err := cursorArg(after)
	if err != nil {
		return nil, err
	}
	return r.DB.Inventory.Movements(ctx, bid, n, cur)
}
