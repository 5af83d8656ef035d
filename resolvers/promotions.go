package resolvers

import (
	"context"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/graph/model"
	"github.com/shopfront/bookstore/loaders"
	"github.com/shopfront/bookstore/store"
)

const typePromotion = "Promotion"

func (r *mutationResolver) promotionInput(ctx context.Context, in model.PromotionInput) (*bookstore.Promotion, error) {
	p := &bookstore.Promotion{Code: in.Code, Description: str(in.Description), Kind: in.Kind, Value: int64(in.Value),
		StartsAt: in.StartsAt, EndsAt: in.EndsAt, Combinable: in.Combinable != nil && *in.Combinable,
		Active: in.Active == nil || *in.Active}
	if in.MinSubtotalCents != nil {
		p.MinSubtotalCents = int64(*in.MinSubtotalCents)
	}
	if in.UsageLimit != nil {
		n := int64(*in.UsageLimit)
		p.UsageLimit = &n
	}
	if in.PerCustomerLimit != nil {
		n := int64(*in.PerCustomerLimit)
		p.PerCustomerLimit = &n
	}
	if in.CategorySlug != nil {
		c, err := categoryBySlug(ctx, "categorySlug", *in.CategorySlug)
		if err != nil {
			return nil, err
		}
		p.CategoryID = &c.ID
	}
	return p, p.Validate()
}

func promotionPayload(p *bookstore.Promotion, err error) (*model.PromotionPayload, error) {
	if err != nil {
		ues, err := userErrors(err, "input")
		return &model.PromotionPayload{UserErrors: ues}, err
	}
	return &model.PromotionPayload{Promotion: p, UserErrors: []*model.UserError{}}, nil
}

func (r *mutationResolver) promotionCreate(ctx context.Context, in model.PromotionInput) (*model.PromotionPayload, error) {
	if err := requireAdmin(ctx); err != nil {
		return nil, err
	}
	p, err := r.promotionInput(ctx, in)
	if err == nil {
		err = r.DB.Promotions.Create(ctx, p)
	}
	return promotionPayload(p, err)
}

func (r *mutationResolver) promotionUpdate(ctx context.Context, id string, in model.PromotionInput) (*model.PromotionPayload, error) {
	if err := requireAdmin(ctx); err != nil {
		return nil, err
	}
	pid, err := parseTypedID("id", typePromotion, id)
	if err != nil {
		ues, err := userErrors(err, "")
		return &model.PromotionPayload{UserErrors: ues}, err
	}
	p, err := r.promotionInput(ctx, in)
	if err == nil {
		p.ID = pid
		err = r.DB.Promotions.Update(ctx, p, in.Active)
	}
	return promotionPayload(p, err)
}

func (r *mutationResolver) promotionDeactivate(ctx context.Context, id string) (*model.PromotionPayload, error) {
	if err := requireAdmin(ctx); err != nil {
		return nil, err
	}
	pid, err := parseTypedID("id", typePromotion, id)
	if err == nil {
		err = r.DB.Promotions.Deactivate(ctx, pid)
	}
	var p *bookstore.Promotion
	if err == nil {
		p, err = r.DB.Promotions.ByID(ctx, pid)
	}
	if err != nil {
		ues, err := userErrors(err, "")
		return &model.PromotionPayload{UserErrors: ues}, err
	}
	return &model.PromotionPayload{Promotion: p, UserErrors: []*model.UserError{}}, nil
}

func (r *queryResolver) promotions(ctx context.Context, first *int, after *string) (*model.PromotionConnection, error) {
	if err := requireAdmin(ctx); err != nil {
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
	ps, more, err := r.DB.Promotions.List(ctx, n, cur)
	if err != nil {
		return nil, err
	}
	out := &model.PromotionConnection{Edges: make([]*model.PromotionEdge, len(ps)), PageInfo: &bookstore.PageInfo{HasNextPage: more, HasPreviousPage: cur != ""}}
	for i, p := range ps {
		out.Edges[i] = &model.PromotionEdge{Cursor: store.PromotionCursor(p), Node: p}
	}
	if len(ps) > 0 {
		s, e := out.Edges[0].Cursor, out.Edges[len(ps)-1].Cursor
		out.PageInfo.StartCursor, out.PageInfo.EndCursor = &s, &e
	}
	return out, nil
}

// promotionNode resolves node(id:) for a Promotion: admins only; anyone else NOT_FOUND.
func (r *queryResolver) promotionNode(ctx context.Context, id uuid.UUID, gid string) (bookstore.Node, error) {
	if requireAdmin(ctx) != nil {
		return nil, notFound("no object with id %s", gid)
	}
	p, err := r.DB.Promotions.ByID(ctx, id)
	if err != nil {
		return nil, err
	}
	return p, nil
}

func promotionCategory(ctx context.Context, p *bookstore.Promotion) (*bookstore.Category, error) {
	if p.CategoryID == nil {
		return nil, nil
	}
	tree, err := loaders.For(ctx).Tree(ctx)
	if err != nil {
		return nil, err
	}
	return tree.ByID(*p.CategoryID), nil
}
