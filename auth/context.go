// Package auth holds passwords, tokens and the identity in a request's context:
// argon2id password hashing and the password policy, EdDSA-signed JWT access tokens with
// rotating keys, opaque refresh tokens, the HTTP middleware that turns a bearer token
// into an Identity, and rate limiters (in-process or Redis) for login throttling and API
// limits. It talks to no database: refresh tokens are stored by package store, and
// package identity ties the pieces into register/login/refresh/logout.
package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore"
)

// Identity is who made a request, as proven by a verified access token.
type Identity struct {
	CustomerID uuid.UUID
	Role       Role
	// SessionID is the refresh-token family the access token was issued for (uuid.Nil if
	// none): logging out of "this session" revokes it.
	SessionID uuid.UUID
}

// IsAdmin reports whether the identity has the ADMIN role.
func (id Identity) IsAdmin() bool { return id.Role == RoleAdmin }

type ctxKey int

const (
	identityKey ctxKey = iota
	authErrorKey
)

// WithIdentity returns ctx carrying id.
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey, id)
}

// FromContext returns the identity in ctx, if the request was authenticated.
func FromContext(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey).(Identity)
	return id, ok
}

// WithAuthError returns ctx recording why the request's credentials were refused. The
// request goes on anonymously; Require reports the reason to the resolvers that need
// an identity.
func WithAuthError(ctx context.Context, err error) context.Context {
	return context.WithValue(ctx, authErrorKey, err)
}

// AuthError returns the error recorded by WithAuthError, if any.
func AuthError(ctx context.Context) error {
	err, _ := ctx.Value(authErrorKey).(error)
	return err
}

// Require returns the request's identity, or an UNAUTHENTICATED *bookstore.Error whose
// message tells an expired token ("access token expired": refresh and retry) from a
// missing or invalid one.
func Require(ctx context.Context) (Identity, error) {
	if id, ok := FromContext(ctx); ok {
		return id, nil
	}
	switch err := AuthError(ctx); {
	case errors.Is(err, ErrTokenExpired):
		return Identity{}, bookstore.Errorf(bookstore.CodeUnauthenticated, "access token expired")
	case errors.Is(err, ErrSessionRevoked):
		return Identity{}, bookstore.Errorf(bookstore.CodeUnauthenticated, "session ended; sign in again")
	case err != nil:
		return Identity{}, bookstore.Errorf(bookstore.CodeUnauthenticated, "invalid access token")
	}
	return Identity{}, bookstore.Errorf(bookstore.CodeUnauthenticated, "authentication required")
}

// RequireRole is Require plus a FORBIDDEN error when the identity has none of roles.
func RequireRole(ctx context.Context, roles ...Role) (Identity, error) {
	id, err := Require(ctx)
	if err != nil {
		return id, err
	}
	for _, r := range roles {
		if id.Role == r {
			return id, nil
		}
	}
	return Identity{}, bookstore.Errorf(bookstore.CodeForbidden, "not allowed")
}

// Verifier checks an access token; *Tokens is one.
type Verifier interface {
	Verify(token string) (Identity, error)
}

// ErrSessionRevoked means a valid access token belongs to a session that was ended
// (logout, refresh-token reuse, password or role change) before the token expired.
var ErrSessionRevoked = errors.New("session revoked")

// SessionChecker says whether the session of a verified access token was revoked.
type SessionChecker interface {
	Revoked(ctx context.Context, id Identity) (bool, error)
}

// Middleware authenticates requests that carry "Authorization: Bearer <access token>".
//
// A request without the header goes on anonymously. A request whose token is malformed,
// invalid or expired also goes on anonymously — it is not answered 401 — with the
// failure recorded in its context (AuthError): fields that need no identity still
// answer, and those that do fail with extensions.code UNAUTHENTICATED and the message
// "access token expired" or "invalid access token" (see Require). GraphQL clients expect
// HTTP 200 with errors, and an expired token is their cue to call refreshToken and retry.
//
// With a SessionChecker, a token whose session was revoked is refused the same way
// (ErrSessionRevoked), on every request: a logout or a demotion takes effect at once,
// not when the token expires. A checker that fails refuses the token too (fail closed):
// the request goes on anonymously.
func Middleware(v Verifier, checks ...SessionChecker) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			header := r.Header.Values("Authorization")
			if len(header) == 0 {
				next.ServeHTTP(w, r)
				return
			}
			ctx := r.Context()
			token, err := bearer(header)
			if err == nil {
				var id Identity
				if id, err = v.Verify(token); err == nil {
					err = checkSession(ctx, id, checks)
				}
				if err == nil {
					ctx = WithIdentity(ctx, id)
				}
			}
			if err != nil {
				ctx = WithAuthError(ctx, err)
			}
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}

func checkSession(ctx context.Context, id Identity, checks []SessionChecker) error {
	for _, c := range checks {
		revoked, err := c.Revoked(ctx, id)
		if err != nil {
			return fmt.Errorf("%w: cannot check the session: %v", ErrTokenInvalid, err)
		}
		if revoked {
			return ErrSessionRevoked
		}
	}
	return nil
}

// bearer extracts the token of a single "Bearer" Authorization header (the scheme is
// case-insensitive, RFC 9110 §11.1).
func bearer(values []string) (string, error) {
	if len(values) != 1 {
		return "", fmt.Errorf("%w: several Authorization headers", ErrTokenInvalid)
	}
	scheme, token, ok := strings.Cut(strings.TrimSpace(values[0]), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", fmt.Errorf("%w: authorization is not a bearer token", ErrTokenInvalid)
	}
	return token, nil
}
