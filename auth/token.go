package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/shopfront/bookstore/internal/keylist"
)

// Access tokens are JWTs signed with EdDSA (Ed25519), pinned: the verifier accepts no
// other algorithm, so "alg: none", HS256 signed with the public key as the secret, or
// RSA tokens are refused before any key is looked at. EdDSA rather than HS256 because
// verification needs only the public key: other services (and the JWKS endpoint) can
// check our tokens without holding a secret that could also mint them. Ed25519 is
// deterministic, fast (~50 µs to verify) and has no parameter choices to get wrong.
//
// Header: alg EdDSA, typ "at+jwt" (RFC 9068 explicit typing: a JWT of another kind signed
// by the same keys is refused), kid. Claims: iss, aud, sub (customer UUID), role, sid
// (the refresh-token family, i.e. the session), jti, iat, nbf, exp.
//
// Configuration (JWT_KEYS): comma-separated "kid:base64seed" entries, each seed being an
// Ed25519 private key seed of 32 bytes (GenerateSigningKey). The first key signs; the
// others only verify, so a rotation is: prepend a new key, deploy, wait one access-token
// TTL, drop the old key. Without JWT_KEYS the dev command generates a key at start
// (DevKeyring): dev only, since every restart then invalidates every issued token and
// several instances would not accept each other's tokens.

const (
	// Algorithm is the only JWS algorithm issued and accepted.
	Algorithm = "EdDSA"
	tokenType = "at+jwt"
	// maxTokenLength bounds the work spent on a header before it is rejected.
	maxTokenLength = 4096
	// DefaultAccessTTL is how long an access token is valid.
	DefaultAccessTTL = 15 * time.Minute
	// DefaultLeeway is how far past its expiry an access token still verifies (clock
	// skew between servers); whatever outlives a token must outlive it by this too.
	DefaultLeeway = 30 * time.Second
	// DefaultIssuer and DefaultAudience name this service in the iss and aud claims.
	DefaultIssuer   = "bookstore"
	DefaultAudience = "bookstore-api"
)

// Role is what a customer may do.
type Role string

// Roles. They appear in tokens and in the customers table: never rename one.
const (
	RoleCustomer Role = "CUSTOMER"
	RoleAdmin    Role = "ADMIN"
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return r == RoleCustomer || r == RoleAdmin }

// Token verification errors. Verify wraps one of them; ErrTokenExpired lets clients tell
// "refresh and retry" from "sign in again".
var (
	ErrTokenInvalid = errors.New("invalid access token")
	ErrTokenExpired = errors.New("access token expired")
)

// SigningKey is an Ed25519 key with the id written in the kid header of the tokens it
// signs.
type SigningKey struct {
	ID   string
	Seed []byte // ed25519.SeedSize bytes
}

// GenerateSigningKey returns a new random key with the given id.
func GenerateSigningKey(id string) (SigningKey, error) {
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return SigningKey{}, fmt.Errorf("generate signing key: %w", err)
	}
	return SigningKey{ID: id, Seed: seed}, nil
}

// Format encodes the key as one JWT_KEYS entry, "kid:base64seed". The result is a secret.
func (k SigningKey) Format() string { return k.ID + ":" + base64.StdEncoding.EncodeToString(k.Seed) }

// Keyring holds the signing key and the keys that still verify. It is immutable and safe
// for concurrent use.
type Keyring struct {
	activeID string
	signer   ed25519.PrivateKey
	public   map[string]ed25519.PublicKey
	ids      []string
}

// NewKeyring returns a keyring that signs with the first key and verifies with all.
func NewKeyring(keys ...SigningKey) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, errors.New("jwt keys: no signing key")
	}
	kr := &Keyring{activeID: keys[0].ID, public: make(map[string]ed25519.PublicKey, len(keys))}
	for i, k := range keys {
		if err := validKeyID(k.ID); err != nil {
			return nil, err
		}
		if len(k.Seed) != ed25519.SeedSize {
			return nil, fmt.Errorf("jwt keys: key %q: seed is %d bytes, want %d", k.ID, len(k.Seed), ed25519.SeedSize)
		}
		if _, dup := kr.public[k.ID]; dup {
			return nil, fmt.Errorf("jwt keys: key id %q appears twice", k.ID)
		}
		priv := ed25519.NewKeyFromSeed(k.Seed)
		if i == 0 {
			kr.signer = priv
		}
		kr.public[k.ID] = priv.Public().(ed25519.PublicKey)
		kr.ids = append(kr.ids, k.ID)
	}
	return kr, nil
}

// ParseKeyring parses JWT_KEYS: comma-separated "kid:base64seed", the first one signing.
func ParseKeyring(s string) (*Keyring, error) {
	entries, err := keylist.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("jwt keys: %w", err)
	}
	keys := make([]SigningKey, len(entries))
	for i, e := range entries {
		keys[i] = SigningKey{ID: e.ID, Seed: e.Key}
	}
	return NewKeyring(keys...)
}

// DevKeyring generates a one-off signing key with a random kid. Development only: tokens
// die with the process and are not shared between instances.
func DevKeyring() (*Keyring, error) {
	k, err := GenerateSigningKey("dev-" + uuid.NewString()[:8])
	if err != nil {
		return nil, err
	}
	return NewKeyring(k)
}

// ActiveKeyID is the kid of the key that signs new tokens.
func (kr *Keyring) ActiveKeyID() string { return kr.activeID }

// String hides the key material.
func (kr *Keyring) String() string {
	return fmt.Sprintf("auth.Keyring{active: %s, keys: %s}", kr.activeID, strings.Join(kr.ids, ","))
}

// GoString hides the key material from %#v.
func (kr *Keyring) GoString() string { return kr.String() }

// JWKS returns the public keys as a JSON Web Key Set (RFC 7517, OKP keys of RFC 8037),
// for a /.well-known/jwks.json endpoint that lets other services verify our tokens.
func (kr *Keyring) JWKS() ([]byte, error) {
	type jwk struct {
		Kty string `json:"kty"`
		Crv string `json:"crv"`
		X   string `json:"x"`
		Kid string `json:"kid"`
		Alg string `json:"alg"`
		Use string `json:"use"`
	}
	set := struct {
		Keys []jwk `json:"keys"`
	}{}
	for _, id := range kr.ids {
		set.Keys = append(set.Keys, jwk{Kty: "OKP", Crv: "Ed25519", X: base64.RawURLEncoding.EncodeToString(kr.public[id]),
			Kid: id, Alg: Algorithm, Use: "sig"})
	}
	return json.Marshal(set)
}

// TokenConfig tunes Tokens; zero fields take the defaults.
type TokenConfig struct {
	Issuer   string
	Audience string
	TTL      time.Duration // access-token lifetime, default 15 minutes
	// Leeway tolerates clock skew between the servers that issue and verify (default 30s).
	Leeway time.Duration
	// Now is the clock (tests move it); default time.Now.
	Now func() time.Time
}

// Tokens issues and verifies access tokens. It is safe for concurrent use.
type Tokens struct {
	keys   *Keyring
	cfg    TokenConfig
	parser *jwt.Parser
}

// NewTokens returns a token issuer and verifier over keys.
func NewTokens(keys *Keyring, cfg TokenConfig) *Tokens {
	if cfg.Issuer == "" {
		cfg.Issuer = DefaultIssuer
	}
	if cfg.Audience == "" {
		cfg.Audience = DefaultAudience
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultAccessTTL
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = DefaultLeeway
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Tokens{keys: keys, cfg: cfg, parser: jwt.NewParser(
		jwt.WithValidMethods([]string{Algorithm}),
		jwt.WithIssuer(cfg.Issuer),
		jwt.WithAudience(cfg.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithNotBeforeRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithTimeFunc(cfg.Now),
		jwt.WithStrictDecoding(),
	)}
}

// TTL is the lifetime of the access tokens Issue makes.
func (t *Tokens) TTL() time.Duration { return t.cfg.TTL }

type claims struct {
	jwt.RegisteredClaims
	Role      Role   `json:"role"`
	SessionID string `json:"sid,omitempty"`
}

// Validate is called by the parser after the registered claims passed.
func (c claims) Validate() error {
	if _, err := uuid.Parse(c.Subject); err != nil {
		return errors.New("sub is not a customer id")
	}
	if !c.Role.Valid() {
		return errors.New("unknown role")
	}
	if c.ID == "" {
		return errors.New("missing jti")
	}
	if c.SessionID != "" {
		if _, err := uuid.Parse(c.SessionID); err != nil {
			return errors.New("sid is not a session id")
		}
	}
	return nil
}

// Issue signs an access token for id, valid from now for the configured TTL.
func (t *Tokens) Issue(id Identity) (token string, expiresAt time.Time, err error) {
	if id.CustomerID == uuid.Nil || !id.Role.Valid() {
		return "", time.Time{}, errors.New("issue access token: incomplete identity")
	}
	now := t.cfg.Now()
	expiresAt = now.Add(t.cfg.TTL).Truncate(time.Second)
	c := claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    t.cfg.Issuer,
			Subject:   id.CustomerID.String(),
			Audience:  jwt.ClaimStrings{t.cfg.Audience},
			ExpiresAt: jwt.NewNumericDate(expiresAt),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        uuid.NewString(),
		},
		Role: id.Role,
	}
	if id.SessionID != uuid.Nil {
		c.SessionID = id.SessionID.String()
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	tok.Header["kid"] = t.keys.activeID
	tok.Header["typ"] = tokenType
	token, err = tok.SignedString(t.keys.signer)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign access token: %w", err)
	}
	return token, expiresAt, nil
}

// Verify checks an access token's algorithm, type, key, signature, issuer, audience and
// times, and returns the identity it carries. Errors wrap ErrTokenExpired or
// ErrTokenInvalid (with the reason, which is safe to log but not meant for clients).
func (t *Tokens) Verify(token string) (Identity, error) {
	if len(token) > maxTokenLength {
		return Identity{}, fmt.Errorf("%w: token too long", ErrTokenInvalid)
	}
	var c claims
	_, err := t.parser.ParseWithClaims(token, &c, t.keyFunc)
	if err != nil {
		if errors.Is(err, jwt.ErrTokenExpired) {
			return Identity{}, fmt.Errorf("%w: %v", ErrTokenExpired, err)
		}
		return Identity{}, fmt.Errorf("%w: %v", ErrTokenInvalid, err)
	}
	id := Identity{CustomerID: uuid.MustParse(c.Subject), Role: c.Role}
	if c.SessionID != "" {
		id.SessionID = uuid.MustParse(c.SessionID)
	}
	return id, nil
}

func (t *Tokens) keyFunc(tok *jwt.Token) (any, error) {
	// The parser already refused any alg but EdDSA (WithValidMethods).
	if typ, _ := tok.Header["typ"].(string); !strings.EqualFold(typ, tokenType) {
		return nil, fmt.Errorf("token type %q is not %s", typ, tokenType)
	}
	kid, ok := tok.Header["kid"].(string)
	if !ok {
		return nil, errors.New("no kid header")
	}
	key, ok := t.keys.public[kid]
	if !ok {
		return nil, fmt.Errorf("unknown kid %q", kid)
	}
	return key, nil
}

func validKeyID(id string) error {
	if id == "" || len(id) > 64 {
		return fmt.Errorf("jwt keys: key id %q must be 1..64 characters", id)
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("jwt keys: key id %q may only hold letters, digits, '-', '_' and '.'", id)
		}
	}
	return nil
}
