package server

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/shopfront/bookstore"
)

// credentialFields are the mutations that check a password or exchange a token: each
// costs an argon2id hash (or a serializable transaction), so thirty aliases of login in
// one request would be thirty hashes behind one throttle check of the HTTP layer.
var credentialFields = map[string]bool{"login": true, "register": true, "refreshToken": true}

// CredentialGuard allows at most one credential field per operation
// (CREDENTIAL_FIELD_LIMIT_EXCEEDED), however it is spelled: aliases, inline fragments
// or fragment spreads.
type CredentialGuard struct{}

var (
	_ graphql.HandlerExtension        = CredentialGuard{}
	_ graphql.OperationContextMutator = CredentialGuard{}
)

// ExtensionName implements graphql.HandlerExtension.
func (CredentialGuard) ExtensionName() string { return "CredentialGuard" }

// Validate implements graphql.HandlerExtension.
func (CredentialGuard) Validate(graphql.ExecutableSchema) error { return nil }

// MutateOperationContext implements graphql.OperationContextMutator.
func (CredentialGuard) MutateOperationContext(_ context.Context, oc *graphql.OperationContext) *gqlerror.Error {
	if oc.Operation == nil || oc.Operation.Operation != ast.Mutation {
		return nil
	}
	n := 0
	seen := map[string]bool{}
	var walk func(ast.SelectionSet)
	walk = func(set ast.SelectionSet) {
		for _, sel := range set {
			switch s := sel.(type) {
			case *ast.Field:
				if credentialFields[s.Name] {
					n++
				}
			case *ast.InlineFragment:
				walk(s.SelectionSet)
			case *ast.FragmentSpread:
				// A fragment spread twice runs its fields once (fields merge by response
				// name), but one spread of a fragment aliasing login twice runs both.
				if s.Definition != nil && !seen[s.Name] {
					seen[s.Name] = true
					walk(s.Definition.SelectionSet)
				}
			}
		}
	}
	walk(oc.Operation.SelectionSet)
	if n > 1 {
		return &gqlerror.Error{
			Message:    "an operation may run at most one of login, register and refreshToken",
			Extensions: map[string]any{"code": bookstore.CodeCredentialFieldLimit},
		}
	}
	return nil
}
