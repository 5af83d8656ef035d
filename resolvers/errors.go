package resolvers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/shopfront/bookstore"
)

// ErrorPresenter maps every resolver error to a client-facing GraphQL error with a stable
// extensions.code. *bookstore.Error keeps its code and message; anything else is
// internal: it is logged with the request's context (request id) and the client sees a
// generic message, so no SQL, stack or PII leaks.
func ErrorPresenter(log *slog.Logger) graphql.ErrorPresenterFunc {
	return func(ctx context.Context, err error) *gqlerror.Error {
		var gqlErr *gqlerror.Error
		if errors.As(err, &gqlErr) && gqlErr.Err == nil {
			// Parse, validation and coercion errors made by gqlgen itself: already safe.
			return graphql.DefaultErrorPresenter(ctx, err)
		}
		presented := graphql.DefaultErrorPresenter(ctx, err)
		var be *bookstore.Error
		if errors.As(err, &be) {
			presented.Message = be.Message
			presented.Extensions = map[string]any{"code": be.Code}
			if be.Field != "" {
				presented.Extensions["field"] = be.Field
			}
			return presented
		}
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			presented.Message = "the request timed out or was cancelled"
			presented.Extensions = map[string]any{"code": bookstore.CodeUnavailable}
			return presented
		}
		log.ErrorContext(ctx, "resolver failed", "path", presented.Path.String(), "err", err)
		presented.Message = "internal error"
		presented.Extensions = map[string]any{"code": bookstore.CodeInternal}
		return presented
	}
}

// RecoverFunc turns a resolver panic into an INTERNAL error and logs the stack, so one
// bad field cannot take down the server or return a 500 without a body.
func RecoverFunc(log *slog.Logger) graphql.RecoverFunc {
	return func(ctx context.Context, p any) error {
		log.ErrorContext(ctx, "resolver panic", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		// Already logged: return a client-safe error so the presenter does not log it again.
		return bookstore.Errorf(bookstore.CodeInternal, "internal error")
	}
}
