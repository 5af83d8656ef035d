package auth_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/auth"
)

func TestMiddleware(t *testing.T) {
	c := &clock{time.Now()}
	tokens := auth.NewTokens(newKeyring(t, newKey(t, "k1")), auth.TokenConfig{Now: c.Now})
	valid, _, _ := tokens.Issue(alice)
	c.t = c.t.Add(-time.Hour)
	expired, _, _ := tokens.Issue(alice)
	c.t = c.t.Add(time.Hour)

	type seen struct {
		id      auth.Identity
		ok      bool
		authErr error
		require error
	}
	var got seen
	h := auth.Middleware(tokens)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = seen{}
		got.id, got.ok = auth.FromContext(r.Context())
		got.authErr = auth.AuthError(r.Context())
		_, got.require = auth.Require(r.Context())
	}))
	cases := []struct {
		name    string
		headers []string
		ok      bool
		message string // Require's message when not ok
	}{
		{"no header", nil, false, "authentication required"},
		{"valid", []string{"Bearer " + valid}, true, ""},
		{"scheme case-insensitive", []string{"bearer " + valid}, true, ""},
		{"expired", []string{"Bearer " + expired}, false, "access token expired"},
		{"garbage", []string{"Bearer abc.def.ghi"}, false, "invalid access token"},
		{"basic auth", []string{"Basic YWxhZGRpbjpvcGVuc2VzYW1l"}, false, "invalid access token"},
		{"no token", []string{"Bearer "}, false, "invalid access token"},
		{"two headers", []string{"Bearer " + valid, "Bearer " + valid}, false, "invalid access token"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/graphql", nil)
			for _, v := range tc.headers {
				req.Header.Add("Authorization", v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d: the middleware must let the request through", rec.Code)
			}
			if got.ok != tc.ok {
				t.Fatalf("authenticated = %v, want %v (auth error %v)", got.ok, tc.ok, got.authErr)
			}
			if tc.ok {
				if got.id != alice || got.authErr != nil || got.require != nil {
					t.Fatalf("identity %+v, auth error %v, require %v", got.id, got.authErr, got.require)
				}
				return
			}
			var be *bookstore.Error
			if !errors.As(got.require, &be) || be.Code != bookstore.CodeUnauthenticated || be.Message != tc.message {
				t.Fatalf("Require = %v, want UNAUTHENTICATED %q", got.require, tc.message)
			}
		})
	}
}

func TestRequireRole(t *testing.T) {
	ctx := auth.WithIdentity(context.Background(), alice)
	if _, err := auth.RequireRole(ctx, auth.RoleCustomer, auth.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	if _, err := auth.RequireRole(ctx, auth.RoleAdmin); bookstore.ErrorCode(err) != bookstore.CodeForbidden {
		t.Fatalf("customer as admin: %v", err)
	}
	if _, err := auth.RequireRole(context.Background(), auth.RoleAdmin); bookstore.ErrorCode(err) != bookstore.CodeUnauthenticated {
		t.Fatalf("anonymous as admin: %v", err)
	}
	admin := auth.WithIdentity(context.Background(), auth.Identity{CustomerID: alice.CustomerID, Role: auth.RoleAdmin})
	if id, err := auth.RequireRole(admin, auth.RoleAdmin); err != nil || !id.IsAdmin() {
		t.Fatalf("admin: %+v, %v", id, err)
	}
}

type checker func(auth.Identity) (bool, error)

func (c checker) Revoked(_ context.Context, id auth.Identity) (bool, error) { return c(id) }

// TestMiddlewareRefusesRevokedSessions: a valid token of an ended session, or one whose
// session cannot be checked, does not authenticate.
func TestMiddlewareRefusesRevokedSessions(t *testing.T) {
	tokens := auth.NewTokens(newKeyring(t, newKey(t, "k1")), auth.TokenConfig{})
	token, _, _ := tokens.Issue(alice)
	for name, tc := range map[string]struct {
		check   checker
		ok      bool
		message string
	}{
		"live":      {func(auth.Identity) (bool, error) { return false, nil }, true, ""},
		"revoked":   {func(auth.Identity) (bool, error) { return true, nil }, false, "session ended; sign in again"},
		"unchecked": {func(auth.Identity) (bool, error) { return false, errors.New("down") }, false, "invalid access token"},
	} {
		t.Run(name, func(t *testing.T) {
			var ok bool
			var reqErr error
			h := auth.Middleware(tokens, tc.check)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, ok = auth.FromContext(r.Context())
				_, reqErr = auth.Require(r.Context())
			}))
			req := httptest.NewRequest(http.MethodPost, "/graphql", nil)
			req.Header.Set("Authorization", "Bearer "+token)
			h.ServeHTTP(httptest.NewRecorder(), req)
			if ok != tc.ok || (!ok && bookstore.ErrorMessage(reqErr) != tc.message) {
				t.Fatalf("authenticated %v (%v), want %v %q", ok, reqErr, tc.ok, tc.message)
			}
		})
	}
}
