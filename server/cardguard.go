package server

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/pii"
)

// CardGuard refuses any operation with an argument or variable that contains a payment
// card number (13–19 digits passing the Luhn check). Payment data reaches the bookstore
// only as PSP tokens; a card number typed into a name, address or search box must be
// neither stored nor logged, so it is stopped here, before any resolver runs, for every
// field at once. The error names the argument, never the value.
type CardGuard struct{}

var (
	_ graphql.HandlerExtension        = CardGuard{}
	_ graphql.OperationContextMutator = CardGuard{}
)

// ExtensionName implements graphql.HandlerExtension.
func (CardGuard) ExtensionName() string { return "CardGuard" }

// Validate implements graphql.HandlerExtension.
func (CardGuard) Validate(graphql.ExecutableSchema) error { return nil }

// MutateOperationContext implements graphql.OperationContextMutator.
func (CardGuard) MutateOperationContext(_ context.Context, oc *graphql.OperationContext) *gqlerror.Error {
	for name, v := range oc.Variables {
		if containsCard(v) {
			return cardError("$" + name)
		}
	}
	if oc.Operation == nil {
		return nil
	}
	var found string
	var walk func(ast.SelectionSet)
	walk = func(set ast.SelectionSet) {
		for _, sel := range set {
			if found != "" {
				return
			}
			switch s := sel.(type) {
			case *ast.Field:
				for _, a := range s.Arguments {
					if literalHasCard(a.Value) {
						found = a.Name
						return
					}
				}
				walk(s.SelectionSet)
			case *ast.InlineFragment:
				walk(s.SelectionSet)
			case *ast.FragmentSpread:
				if s.Definition != nil {
					walk(s.Definition.SelectionSet)
				}
			}
		}
	}
	walk(oc.Operation.SelectionSet)
	if found != "" {
		return cardError(found)
	}
	return nil
}

func cardError(arg string) *gqlerror.Error {
	return &gqlerror.Error{
		Message: "a value looks like a payment card number; card data is never accepted — pay with a PSP token",
		Extensions: map[string]any{
			"code":  bookstore.CodeBadUserInput,
			"field": arg,
		},
	}
}

func containsCard(v any) bool {
	switch v := v.(type) {
	case string:
		return pii.ContainsCardNumber(v)
	case []any:
		for _, e := range v {
			if containsCard(e) {
				return true
			}
		}
	case map[string]any:
		for _, e := range v {
			if containsCard(e) {
				return true
			}
		}
	}
	return false
}

func literalHasCard(v *ast.Value) bool {
	if v == nil {
		return false
	}
	if v.Kind == ast.StringValue || v.Kind == ast.BlockValue {
		return pii.ContainsCardNumber(v.Raw)
	}
	for _, c := range v.Children {
		if literalHasCard(c.Value) {
			return true
		}
	}
	return false
}
