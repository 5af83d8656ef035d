package auth_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/shopfront/bookstore/auth"
)

// clock is a settable time source.
type clock struct{ t time.Time }

func (c *clock) Now() time.Time { return c.t }

func newKey(t testing.TB, id string) auth.SigningKey {
	t.Helper()
	k, err := auth.GenerateSigningKey(id)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newKeyring(t testing.TB, keys ...auth.SigningKey) *auth.Keyring {
	t.Helper()
	kr, err := auth.NewKeyring(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

var alice = auth.Identity{CustomerID: uuid.MustParse("6f1c2a4e-8a51-4c6e-9a5e-1f0f9a3b2c01"), Role: auth.RoleCustomer,
	SessionID: uuid.MustParse("0b7e1d1c-3f2a-4e55-8d7a-6a1b2c3d4e5f")}

func TestIssueAndVerify(t *testing.T) {
	c := &clock{time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	tokens := auth.NewTokens(newKeyring(t, newKey(t, "k1")), auth.TokenConfig{Now: c.Now})
	tok, exp, err := tokens.Issue(alice)
	if err != nil {
		t.Fatal(err)
	}
	if want := c.t.Add(15 * time.Minute); !exp.Equal(want) {
		t.Fatalf("expiresAt = %v, want %v", exp, want)
	}
	got, err := tokens.Verify(tok)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if got != alice {
		t.Fatalf("Verify = %+v, want %+v", got, alice)
	}

	// The token carries exactly the documented header and claims.
	parts := strings.Split(tok, ".")
	var header, claims map[string]any
	decode(t, parts[0], &header)
	decode(t, parts[1], &claims)
	if header["alg"] != "EdDSA" || header["kid"] != "k1" || header["typ"] != "at+jwt" {
		t.Fatalf("header = %v", header)
	}
	for _, name := range []string{"iss", "aud", "sub", "role", "sid", "jti", "iat", "nbf", "exp"} {
		if _, ok := claims[name]; !ok {
			t.Errorf("claim %s missing from %v", name, claims)
		}
	}
	if claims["sub"] != alice.CustomerID.String() || claims["role"] != "CUSTOMER" || claims["iss"] != "bookstore" {
		t.Errorf("claims = %v", claims)
	}
	// jti is unique per token.
	tok2, _, _ := tokens.Issue(alice)
	var claims2 map[string]any
	decode(t, strings.Split(tok2, ".")[1], &claims2)
	if claims2["jti"] == claims["jti"] {
		t.Error("two tokens share a jti")
	}
}

func TestIssueRefusesIncompleteIdentity(t *testing.T) {
	tokens := auth.NewTokens(newKeyring(t, newKey(t, "k1")), auth.TokenConfig{})
	for _, id := range []auth.Identity{{Role: auth.RoleCustomer}, {CustomerID: uuid.New()}, {CustomerID: uuid.New(), Role: "ROOT"}} {
		if _, _, err := tokens.Issue(id); err == nil {
			t.Errorf("Issue(%+v) succeeded", id)
		}
	}
}

func decode(t *testing.T, seg string, v any) {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

// forge signs arbitrary claims and header with any method and key.
func forge(t *testing.T, method jwt.SigningMethod, key any, header map[string]any, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, c)
	for k, v := range header {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVerifyRejects(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	c := &clock{now}
	k1 := newKey(t, "k1")
	kr := newKeyring(t, k1)
	tokens := auth.NewTokens(kr, auth.TokenConfig{Now: c.Now})
	priv := ed25519.NewKeyFromSeed(k1.Seed)
	pub := priv.Public().(ed25519.PublicKey)
	_, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}

	good := func() jwt.MapClaims {
		return jwt.MapClaims{
			"iss": "bookstore", "aud": []string{"bookstore-api"}, "sub": alice.CustomerID.String(),
			"role": "CUSTOMER", "jti": uuid.NewString(), "iat": now.Unix(), "nbf": now.Unix(),
			"exp": now.Add(15 * time.Minute).Unix(),
		}
	}
	with := func(k string, v any) jwt.MapClaims {
		m := good()
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	hdr := map[string]any{"kid": "k1", "typ": "at+jwt"}

	// Sanity: the forging helper makes acceptable tokens when nothing is wrong.
	if _, err := tokens.Verify(forge(t, jwt.SigningMethodEdDSA, priv, hdr, good())); err != nil {
		t.Fatalf("well-formed forged token refused: %v", err)
	}

	valid, _, _ := tokens.Issue(alice)
	parts := strings.Split(valid, ".")
	tamperedClaims := good()
	tamperedClaims["role"] = "ADMIN"
	cb, _ := json.Marshal(tamperedClaims)
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(cb) + "." + parts[2]

	cases := []struct {
		name  string
		token string
		want  error
	}{
		{"alg none", forge(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, hdr, good()), auth.ErrTokenInvalid},
		{"alg none, empty signature by hand", parts[0][:0] + b64json(t, map[string]any{"alg": "none", "kid": "k1", "typ": "at+jwt"}) + "." + parts[1] + ".", auth.ErrTokenInvalid},
		{"HS256 keyed with the public key", forge(t, jwt.SigningMethodHS256, []byte(pub), hdr, good()), auth.ErrTokenInvalid},
		{"HS256 keyed with the seed", forge(t, jwt.SigningMethodHS256, k1.Seed, hdr, good()), auth.ErrTokenInvalid},
		{"RS256", forge(t, jwt.SigningMethodRS256, rsaKey, hdr, good()), auth.ErrTokenInvalid},
		{"wrong key, right kid", forge(t, jwt.SigningMethodEdDSA, otherPriv, hdr, good()), auth.ErrTokenInvalid},
		{"unknown kid", forge(t, jwt.SigningMethodEdDSA, priv, map[string]any{"kid": "k9", "typ": "at+jwt"}, good()), auth.ErrTokenInvalid},
		{"no kid", forge(t, jwt.SigningMethodEdDSA, priv, map[string]any{"typ": "at+jwt"}, good()), auth.ErrTokenInvalid},
		{"typ JWT", forge(t, jwt.SigningMethodEdDSA, priv, map[string]any{"kid": "k1", "typ": "JWT"}, good()), auth.ErrTokenInvalid},
		{"wrong iss", forge(t, jwt.SigningMethodEdDSA, priv, hdr, with("iss", "evil")), auth.ErrTokenInvalid},
		{"no iss", forge(t, jwt.SigningMethodEdDSA, priv, hdr, with("iss", nil)), auth.ErrTokenInvalid},
		{"wrong aud", forge(t, jwt.SigningMethodEdDSA, priv, hdr, with("aud", []string{"other-api"})), auth.ErrTokenInvalid},
		{"no aud", forge(t, jwt.SigningMethodEdDSA, priv, hdr, with("aud", nil)), auth.ErrTokenInvalid},
		{"expired", forge(t, jwt.SigningMethodEdDSA, priv, hdr, with("exp", now.Add(-time.Minute).Unix())), auth.ErrTokenExpired},
		{"no exp", forge(t, jwt.SigningMethodEdDSA, priv, hdr, with("exp", nil)), auth.ErrTokenInvalid},
		{"not yet valid", forge(t, jwt.SigningMethodEdDSA, priv, hdr, with("nbf", now.Add(time.Hour).Unix())), auth.ErrTokenInvalid},
		{"no nbf", forge(t, jwt.SigningMethodEdDSA, priv, hdr, with("nbf", nil)), auth.ErrTokenInvalid},
		{"issued in the future", forge(t, jwt.SigningMethodEdDSA, priv, hdr, with("iat", now.Add(time.Hour).Unix())), auth.ErrTokenInvalid},
		{"sub not a uuid", forge(t, jwt.SigningMethodEdDSA, priv, hdr, with("sub", "admin")), auth.ErrTokenInvalid},
		{"unknown role", forge(t, jwt.SigningMethodEdDSA, priv, hdr, with("role", "ROOT")), auth.ErrTokenInvalid},
		{"no jti", forge(t, jwt.SigningMethodEdDSA, priv, hdr, with("jti", nil)), auth.ErrTokenInvalid},
		{"bad sid", forge(t, jwt.SigningMethodEdDSA, priv, hdr, with("sid", "x")), auth.ErrTokenInvalid},
		{"tampered claims", tampered, auth.ErrTokenInvalid},
		{"garbage", "not.a.jwt", auth.ErrTokenInvalid},
		{"empty", "", auth.ErrTokenInvalid},
		{"huge", strings.Repeat("a", 5000), auth.ErrTokenInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id, err := tokens.Verify(tc.token)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %+v, %v; want %v", id, err, tc.want)
			}
			if tc.want == auth.ErrTokenInvalid && errors.Is(err, auth.ErrTokenExpired) {
				t.Fatalf("error %v is both invalid and expired", err)
			}
		})
	}
}

func b64json(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestTokenExpiresAfterTTL(t *testing.T) {
	c := &clock{time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	tokens := auth.NewTokens(newKeyring(t, newKey(t, "k1")), auth.TokenConfig{Now: c.Now, TTL: 15 * time.Minute, Leeway: 10 * time.Second})
	tok, _, err := tokens.Issue(alice)
	if err != nil {
		t.Fatal(err)
	}
	c.t = c.t.Add(15*time.Minute + 5*time.Second) // within leeway
	if _, err := tokens.Verify(tok); err != nil {
		t.Fatalf("within leeway: %v", err)
	}
	c.t = c.t.Add(10 * time.Second)
	if _, err := tokens.Verify(tok); !errors.Is(err, auth.ErrTokenExpired) {
		t.Fatalf("after TTL + leeway: %v, want ErrTokenExpired", err)
	}
}

func TestIssuerAndAudienceAreChecked(t *testing.T) {
	kr := newKeyring(t, newKey(t, "k1"))
	ours := auth.NewTokens(kr, auth.TokenConfig{})
	otherAud := auth.NewTokens(kr, auth.TokenConfig{Audience: "admin-api"})
	otherIss := auth.NewTokens(kr, auth.TokenConfig{Issuer: "staging"})
	tok, _, _ := ours.Issue(alice)
	if _, err := otherAud.Verify(tok); !errors.Is(err, auth.ErrTokenInvalid) {
		t.Errorf("token for bookstore-api accepted by admin-api: %v", err)
	}
	if _, err := otherIss.Verify(tok); !errors.Is(err, auth.ErrTokenInvalid) {
		t.Errorf("token from bookstore accepted by a staging verifier: %v", err)
	}
}

func TestKeyRotation(t *testing.T) {
	k1, k2 := newKey(t, "2025-01"), newKey(t, "2025-04")
	before := auth.NewTokens(newKeyring(t, k1), auth.TokenConfig{})
	old, _, _ := before.Issue(alice)

	// Rotation: the new key signs, the old one still verifies.
	during := auth.NewTokens(newKeyring(t, k2, k1), auth.TokenConfig{})
	if _, err := during.Verify(old); err != nil {
		t.Fatalf("token of the previous key refused during rotation: %v", err)
	}
	fresh, _, _ := during.Issue(alice)
	var header map[string]any
	decode(t, strings.Split(fresh, ".")[0], &header)
	if header["kid"] != "2025-04" {
		t.Fatalf("new token kid = %v, want 2025-04", header["kid"])
	}
	if _, err := before.Verify(fresh); !errors.Is(err, auth.ErrTokenInvalid) {
		t.Fatalf("an instance without the new key accepted its token: %v", err)
	}

	// Retirement: the old key is gone, its tokens die.
	after := auth.NewTokens(newKeyring(t, k2), auth.TokenConfig{})
	if _, err := after.Verify(old); !errors.Is(err, auth.ErrTokenInvalid) {
		t.Fatalf("token of a retired key accepted: %v", err)
	}
	if _, err := after.Verify(fresh); err != nil {
		t.Fatalf("token of the active key refused: %v", err)
	}
}

func TestParseKeyring(t *testing.T) {
	k1, k2 := newKey(t, "a"), newKey(t, "b")
	kr, err := auth.ParseKeyring(" " + k1.Format() + " , " + k2.Format() + ",")
	if err != nil {
		t.Fatal(err)
	}
	if kr.ActiveKeyID() != "a" {
		t.Fatalf("active = %q", kr.ActiveKeyID())
	}
	// Tokens signed by a keyring parsed from the same string verify across instances.
	tok, _, _ := auth.NewTokens(kr, auth.TokenConfig{}).Issue(alice)
	again, _ := auth.ParseKeyring(k1.Format())
	if _, err := auth.NewTokens(again, auth.TokenConfig{}).Verify(tok); err != nil {
		t.Fatalf("same key, other instance: %v", err)
	}
	secret := base64.StdEncoding.EncodeToString(k1.Seed)
	for _, bad := range []string{"", ",", secret, "a:" + secret[:10], "a:***", "a:" + secret + ",a:" + secret, "bad id:" + secret} {
		_, err := auth.ParseKeyring(bad)
		if err == nil {
			t.Errorf("ParseKeyring(%q) succeeded", bad)
		} else if strings.Contains(err.Error(), secret[:10]) {
			t.Errorf("error leaks the seed: %v", err)
		}
	}
	if s := fmt.Sprintf("%v %+v %#v", kr, kr, kr); strings.Contains(s, secret[:10]) {
		t.Errorf("formatting leaks the seed: %s", s)
	}
}

func TestDevKeyring(t *testing.T) {
	a, err := auth.DevKeyring()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := auth.DevKeyring()
	if a.ActiveKeyID() == b.ActiveKeyID() || !strings.HasPrefix(a.ActiveKeyID(), "dev-") {
		t.Fatalf("dev kids %q, %q", a.ActiveKeyID(), b.ActiveKeyID())
	}
	tok, _, _ := auth.NewTokens(a, auth.TokenConfig{}).Issue(alice)
	if _, err := auth.NewTokens(b, auth.TokenConfig{}).Verify(tok); err == nil {
		t.Fatal("a token of one dev keyring verified with another")
	}
}

func TestJWKS(t *testing.T) {
	k1, k2 := newKey(t, "a"), newKey(t, "b")
	kr := newKeyring(t, k1, k2)
	b, err := kr.JWKS()
	if err != nil {
		t.Fatal(err)
	}
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 2 || set.Keys[0]["kid"] != "a" || set.Keys[0]["kty"] != "OKP" || set.Keys[0]["crv"] != "Ed25519" {
		t.Fatalf("JWKS = %s", b)
	}
	x, _ := base64.RawURLEncoding.DecodeString(set.Keys[0]["x"])
	if !ed25519.PublicKey(x).Equal(ed25519.NewKeyFromSeed(k1.Seed).Public()) {
		t.Fatal("JWKS x is not the public key")
	}
	if strings.Contains(string(b), base64.RawURLEncoding.EncodeToString(k1.Seed)) {
		t.Fatal("JWKS leaks the seed")
	}
	// Another service verifies our token with nothing but the JWKS public key.
	tok, _, _ := auth.NewTokens(kr, auth.TokenConfig{}).Issue(alice)
	if _, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return ed25519.PublicKey(x), nil },
		jwt.WithValidMethods([]string{"EdDSA"}), jwt.WithAudience("bookstore-api")); err != nil {
		t.Fatalf("verify with the JWKS key: %v", err)
	}
}

func BenchmarkVerify(b *testing.B) {
	tokens := auth.NewTokens(newKeyring(b, newKey(b, "k1")), auth.TokenConfig{})
	tok, _, _ := tokens.Issue(alice)
	for b.Loop() {
		if _, err := tokens.Verify(tok); err != nil {
			b.Fatal(err)
		}
	}
}
