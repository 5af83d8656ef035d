package server

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// singleRootField refuses a subscription operation that selects more than one root
// field (GraphQL spec, "Single root field") with GRAPHQL_VALIDATION_FAILED. gqlparser's
// SingleFieldSubscriptions rule counts field names, not response names, so
// `{ a: orderStatusChanged(...) b: orderStatusChanged(...) }` passes it and the executor
// then fails it at run time as INTERNAL ("must subscribe to exactly one stream"). The
// fields are collected as the executor does (fragments, @skip and @include with the
// operation's variables).
type singleRootField struct{}

var (
	_ graphql.HandlerExtension        = singleRootField{}
	_ graphql.OperationContextMutator = singleRootField{}
)

func (singleRootField) ExtensionName() string                   { return "SingleRootField" }
func (singleRootField) Validate(graphql.ExecutableSchema) error { return nil }

func (singleRootField) MutateOperationContext(_ context.Context, oc *graphql.OperationContext) *gqlerror.Error {
	op := oc.Operation
	if op == nil || op.Operation != ast.Subscription {
		return nil
	}
	if n := len(graphql.CollectFields(oc, op.SelectionSet, []string{"Subscription"})); n != 1 {
		return &gqlerror.Error{
			Message:    "a subscription must select exactly one root field",
			Extensions: map[string]any{"code": codeValidationFailed},
		}
	}
	return nil
}
