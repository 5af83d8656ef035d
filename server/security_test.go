package server_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/shopfront/bookstore/auth"
	"github.com/shopfront/bookstore/identity"
	"github.com/shopfront/bookstore/pii"
	"github.com/shopfront/bookstore/store"
)

// newSecurity builds the real identity service over db with fresh keys and cheap password
// hashing (the production argon2id cost would dominate the tests' run time).
func newSecurity(t testing.TB, db *store.DB) (*identity.Service, *auth.Tokens) {
	t.Helper()
	return newSecurityWith(t, db, nil)
}

// newSecurityWith is newSecurity with edit applied to the configuration.
func newSecurityWith(t testing.TB, db *store.DB, edit func(*identity.Config)) (*identity.Service, *auth.Tokens) {
	t.Helper()
	mk, err := pii.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	master, err := pii.ParseKeyring(pii.FormatKey("m1", mk))
	if err != nil {
		t.Fatal(err)
	}
	ik, _ := pii.GenerateKey()
	index, err := pii.NewBlindIndex(ik)
	if err != nil {
		t.Fatal(err)
	}
	hasher, err := auth.NewHasher(auth.TestPasswordParams(), 0)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := auth.DevKeyring()
	if err != nil {
		t.Fatal(err)
	}
	tokens := auth.NewTokens(keys, auth.TokenConfig{})
	// Every request of a test comes from 127.0.0.1: the per-IP and per-account hash
	// bounds (a few a second, tested in identity) would throttle the suites' sign-ins.
	lenient := func() auth.Limiter {
		l, err := auth.NewLocalLimiter(auth.PerMinute(1_000_000), auth.LocalOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	cfg := identity.Config{DB: db, PII: master, Index: index, Hasher: hasher, Tokens: tokens,
		HashPerIP: lenient(), HashPerAccount: lenient(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if edit != nil {
		edit(&cfg)
	}
	svc, err := identity.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return svc, tokens
}

// as runs a query with a bearer token ("" = anonymous).
func (a *api) as(token, query string, vars map[string]any) gqlResponse {
	a.t.Helper()
	h := http.Header{}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	return a.doWith(query, vars, h)
}

type session struct {
	AccessToken  string
	RefreshToken string
	Customer     struct{ ID, Email, Name, Role string }
	UserErrors   []struct {
		Code    string
		Field   []string
		Message string
	}
}

const authFields = `accessToken refreshToken expiresAt customer { id email name role } userErrors { code field message }`

func (a *api) register(email, name string) session {
	a.t.Helper()
	var out struct{ Register session }
	a.ok(`mutation($in: RegisterInput!) { register(input: $in) { `+authFields+` } }`,
		map[string]any{"in": map[string]any{"email": email, "password": "a long enough passphrase", "name": name}}, &out)
	if len(out.Register.UserErrors) > 0 || out.Register.AccessToken == "" {
		a.t.Fatalf("register %s: %+v", email, out.Register.UserErrors)
	}
	return out.Register
}

func code(r gqlResponse) string {
	if len(r.Errors) == 0 {
		return ""
	}
	c, _ := r.Errors[0].Extensions["code"].(string)
	return c
}

func TestAccountLifecycle(t *testing.T) {
	a := newAPI(t, 0)
	s := a.register("Reader@Example.com", "Ada Reader")
	if !strings.EqualFold(s.Customer.Email, "reader@example.com") || s.Customer.Role != "CUSTOMER" {
		t.Fatalf("registered customer = %+v", s.Customer)
	}

	var me struct {
		Me *struct{ ID, Email, Name string }
	}
	if r := a.as(s.AccessToken, `{ me { id email name } }`, nil); len(r.Errors) > 0 || json.Unmarshal(r.Data, &me) != nil || me.Me == nil || me.Me.ID != s.Customer.ID {
		t.Fatalf("me with a fresh token: %s %+v", r.Data, r.Errors)
	}
	if r := a.as("", `{ me { id } }`, nil); len(r.Errors) > 0 || string(r.Data) != `{"me":null}` {
		t.Fatalf("anonymous me = %s %+v", r.Data, r.Errors)
	}

	// Duplicate email and a wrong password are userErrors, not top-level errors.
	var dup struct{ Register session }
	a.ok(`mutation { register(input: {email: "reader@example.com", password: "another long passphrase", name: "X"}) { `+authFields+` } }`, nil, &dup)
	if len(dup.Register.UserErrors) != 1 || dup.Register.UserErrors[0].Code != "CONFLICT" || strings.Join(dup.Register.UserErrors[0].Field, ".") != "input.email" || dup.Register.AccessToken != "" {
		t.Fatalf("duplicate register = %+v", dup.Register)
	}
	var bad struct{ Login session }
	a.ok(`mutation { login(input: {email: "reader@example.com", password: "not the passphrase"}) { `+authFields+` } }`, nil, &bad)
	var unknown struct{ Login session }
	a.ok(`mutation { login(input: {email: "nobody@example.com", password: "not the passphrase"}) { `+authFields+` } }`, nil, &unknown)
	if len(bad.Login.UserErrors) != 1 || len(unknown.Login.UserErrors) != 1 || !reflect.DeepEqual(bad.Login.UserErrors, unknown.Login.UserErrors) {
		t.Fatalf("wrong password and unknown email must look the same: %+v vs %+v", bad.Login.UserErrors, unknown.Login.UserErrors)
	}

	// Refresh rotates; the old refresh token then revokes the whole session.
	var r1 struct{ RefreshToken session }
	a.ok(`mutation($t: String!) { refreshToken(token: $t) { `+authFields+` } }`, map[string]any{"t": s.RefreshToken}, &r1)
	if r1.RefreshToken.RefreshToken == "" || r1.RefreshToken.RefreshToken == s.RefreshToken {
		t.Fatalf("refresh = %+v", r1.RefreshToken)
	}
	var reuse struct{ RefreshToken session }
	a.ok(`mutation($t: String!) { refreshToken(token: $t) { `+authFields+` } }`, map[string]any{"t": s.RefreshToken}, &reuse)
	if len(reuse.RefreshToken.UserErrors) != 1 || reuse.RefreshToken.UserErrors[0].Code != "UNAUTHENTICATED" {
		t.Fatalf("reused refresh token = %+v", reuse.RefreshToken)
	}
	var after struct{ RefreshToken session }
	a.ok(`mutation($t: String!) { refreshToken(token: $t) { `+authFields+` } }`, map[string]any{"t": r1.RefreshToken.RefreshToken}, &after)
	if len(after.RefreshToken.UserErrors) != 1 {
		t.Fatalf("the rotated token still works after reuse of its predecessor: %+v", after.RefreshToken)
	}

	// Logout revokes the session of a fresh sign-in.
	var in struct{ Login session }
	a.ok(`mutation { login(input: {email: "READER@example.com ", password: "a long enough passphrase"}) { `+authFields+` } }`, nil, &in)
	if in.Login.RefreshToken == "" {
		t.Fatalf("login = %+v", in.Login)
	}
	var out struct{ Logout struct{ Ok bool } }
	a.ok(`mutation($t: String!) { logout(refreshToken: $t) { ok userErrors { code } } }`, map[string]any{"t": in.Login.RefreshToken}, &out)
	var gone struct{ RefreshToken session }
	a.ok(`mutation($t: String!) { refreshToken(token: $t) { `+authFields+` } }`, map[string]any{"t": in.Login.RefreshToken}, &gone)
	if !out.Logout.Ok || len(gone.RefreshToken.UserErrors) != 1 {
		t.Fatalf("refresh after logout = %+v", gone.RefreshToken)
	}
}

// TestAttackerCannotReachOtherCustomersObjects plays a signed-in customer who has learnt
// another customer's ids and tries every way in: node(id:), mutations by id, and admin
// mutations. Each attempt must fail as if the object did not exist, and change nothing.
func TestAttackerCannotReachOtherCustomersObjects(t *testing.T) {
	a := newAPI(t, 3)
	victim := a.register("victim@example.com", "Vera Victim")
	attacker := a.register("attacker@example.com", "Mallory")

	var added struct {
		AddAddress struct {
			Address    struct{ ID, Line1 string }
			UserErrors []struct{ Code string }
		}
	}
	a.mustAs(victim.AccessToken, `mutation { addAddress(input: {recipient: "Vera Victim", line1: "1 Secret Lane", city: "Springfield", postalCode: "12345", country: "US"}) { address { id line1 } userErrors { code } } }`, &added)
	addrID := added.AddAddress.Address.ID
	if addrID == "" {
		t.Fatalf("addAddress = %+v", added)
	}

	for name, q := range map[string]string{
		"customer by node": `query($id: ID!) { node(id: $id) { id ... on Customer { email name } } }`,
		"address by node":  `query($id: ID!) { node(id: $id) { id ... on Address { line1 } } }`,
	} {
		id := victim.Customer.ID
		if strings.HasPrefix(name, "address") {
			id = addrID
		}
		for _, token := range []string{attacker.AccessToken, ""} {
			r := a.as(token, q, map[string]any{"id": id})
			if code(r) != "NOT_FOUND" || strings.Contains(string(r.Data), "Secret") || strings.Contains(string(r.Data), "victim") {
				t.Fatalf("%s (signed in: %v): %s %+v", name, token != "", r.Data, r.Errors)
			}
		}
		// The owner does see it.
		if r := a.as(victim.AccessToken, q, map[string]any{"id": id}); len(r.Errors) > 0 || string(r.Data) == `{"node":null}` {
			t.Fatalf("%s as the owner: %s %+v", name, r.Data, r.Errors)
		}
	}

	var del struct {
		DeleteAddress struct {
			DeletedID  *string
			UserErrors []struct{ Code string }
		}
	}
	a.mustAs(attacker.AccessToken, `mutation($id: ID!) { deleteAddress(id: $id) { deletedId userErrors { code } } }`, &del, "id", addrID)
	if del.DeleteAddress.DeletedID != nil || len(del.DeleteAddress.UserErrors) != 1 || del.DeleteAddress.UserErrors[0].Code != "NOT_FOUND" {
		t.Fatalf("attacker deleteAddress = %+v", del.DeleteAddress)
	}
	var mine struct {
		Me struct{ Addresses []struct{ ID string } }
	}
	a.mustAs(victim.AccessToken, `{ me { addresses { id } } }`, &mine)
	if len(mine.Me.Addresses) != 1 || mine.Me.Addresses[0].ID != addrID {
		t.Fatalf("victim's addresses after the attack: %+v", mine.Me.Addresses)
	}

	// Admin mutations: a customer is FORBIDDEN, an anonymous caller UNAUTHENTICATED.
	var book struct {
		Books struct {
			Edges []struct{ Node struct{ ID string } }
		}
	}
	a.ok(`{ books(first: 1) { edges { node { id } } } }`, nil, &book)
	q := `mutation($id: ID!) { setBookPrice(bookId: $id, priceCents: 1) { book { priceCents } } }`
	vars := map[string]any{"id": book.Books.Edges[0].Node.ID}
	if c := code(a.as(attacker.AccessToken, q, vars)); c != "FORBIDDEN" {
		t.Fatalf("customer setBookPrice: code %q", c)
	}
	if c := code(a.as("", q, vars)); c != "UNAUTHENTICATED" {
		t.Fatalf("anonymous setBookPrice: code %q", c)
	}
	// A token with a forged role claim (signed by another key) is not an admin either.
	otherKeys, _ := auth.DevKeyring()
	forged, _, err := auth.NewTokens(otherKeys, auth.TokenConfig{}).Issue(auth.Identity{CustomerID: [16]byte{1}, Role: auth.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	if c := code(a.as(forged, q, vars)); c != "UNAUTHENTICATED" {
		t.Fatalf("forged admin token: code %q", c)
	}
}

// TestAdminManagesCatalog: an ADMIN's price and stock changes are applied and validated.
func TestAdminManagesCatalog(t *testing.T) {
	a := newAPI(t, 3)
	adminToken, _, err := a.tokens.Issue(auth.Identity{CustomerID: [16]byte{9}, Role: auth.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	var book struct {
		Books struct {
			Edges []struct {
				Node struct {
					ID           string
					Availability struct{ Quantity int }
				}
			}
		}
	}
	a.ok(`{ books(first: 1) { edges { node { id availability { quantity } } } } }`, nil, &book)
	id, stock := book.Books.Edges[0].Node.ID, book.Books.Edges[0].Node.Availability.Quantity
	var out struct {
		SetBookPrice struct {
			Book       struct{ PriceCents int }
			UserErrors []struct{ Code string }
		}
		SetStock struct {
			Book       struct{ Availability struct{ Quantity int } }
			UserErrors []struct{ Code string }
		}
	}
	a.mustAs(adminToken, `mutation($id: ID!) { setBookPrice(bookId: $id, priceCents: 1234) { book { priceCents } userErrors { code } }
		setStock(bookId: $id, quantity: 3, expectedQuantity: `+strconv.Itoa(stock)+`) { book { availability { quantity } } userErrors { code } } }`, &out, "id", id)
	if out.SetBookPrice.Book.PriceCents != 1234 || out.SetStock.Book.Availability.Quantity != 3 {
		t.Fatalf("admin writes = %+v", out)
	}
	var neg struct {
		SetBookPrice struct {
			Book       *struct{ PriceCents int }
			UserErrors []struct{ Code string }
		}
	}
	a.mustAs(adminToken, `mutation($id: ID!) { setBookPrice(bookId: $id, priceCents: -1) { book { priceCents } userErrors { code } } }`, &neg, "id", id)
	if neg.SetBookPrice.Book != nil || len(neg.SetBookPrice.UserErrors) != 1 || neg.SetBookPrice.UserErrors[0].Code != "BAD_USER_INPUT" {
		t.Fatalf("negative price = %+v", neg.SetBookPrice)
	}
}

// mustAs runs a query as token that must not fail, decoding data into v; kv are variable
// name/value pairs.
func (a *api) mustAs(token, query string, v any, kv ...string) {
	a.t.Helper()
	vars := map[string]any{}
	for i := 0; i+1 < len(kv); i += 2 {
		vars[kv[i]] = kv[i+1]
	}
	r := a.as(token, query, vars)
	if len(r.Errors) > 0 {
		a.t.Fatalf("errors: %+v", r.Errors)
	}
	if err := json.Unmarshal(r.Data, v); err != nil {
		a.t.Fatalf("decode %s: %v", r.Data, err)
	}
}

func adminIdentity() auth.Identity {
	return auth.Identity{CustomerID: [16]byte{9}, Role: auth.RoleAdmin}
}

func discardLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestCardNumbersAreRefusedEverywhere: a card number in any argument, inline or as a
// variable, nested in an input object or not, is refused before anything runs, and the
// response never echoes it. ISBNs (which pass no card prefix) are not mistaken for one.
func TestCardNumbersAreRefusedEverywhere(t *testing.T) {
	a := newAPI(t, 1)
	const card = "4111 1111 1111 1111"
	s := a.register("payer@example.com", "Pat Payer")
	for name, tc := range map[string]struct {
		q    string
		vars map[string]any
	}{
		"search text variable": {`query($q: String!) { search(query: $q) { totalCount } }`, map[string]any{"q": card}},
		"inline search text":   {`{ search(query: "my card 4111111111111111 thanks") { totalCount } }`, nil},
		"nested input object": {`mutation($in: AddressInput!) { addAddress(input: $in) { userErrors { code } } }`,
			map[string]any{"in": map[string]any{"recipient": "Pat", "line1": card, "city": "X", "country": "US"}}},
		"register name": {`mutation { register(input: {email: "c@example.com", password: "long enough passphrase", name: "5500-0000-0000-0004"}) { userErrors { code } } }`, nil},
	} {
		t.Run(name, func(t *testing.T) {
			r := a.as(s.AccessToken, tc.q, tc.vars)
			if code(r) != "BAD_USER_INPUT" || r.Data != nil && string(r.Data) != "null" {
				t.Fatalf("got data %s errors %+v", r.Data, r.Errors)
			}
			raw, _ := json.Marshal(r.Errors)
			if strings.Contains(string(raw), "1111") || strings.Contains(string(raw), "0004") {
				t.Fatalf("the error echoes the card number: %s", raw)
			}
		})
	}
	if r := a.do(`{ bookByIsbn(isbn: "978-0-306-40615-7") { title } }`, nil); code(r) == "BAD_USER_INPUT" {
		t.Fatalf("an ISBN was taken for a card number: %+v", r.Errors)
	}
}

// A card number written with a leading "+" parses as a phone ("+4929 1234 5678 9015" is a
// valid German number): the phone exemption of the card guard applies to phone fields
// only, so search and suggest refuse it, and register refuses it as a phone.
func TestCardWithPlusIsRefusedOutsidePhoneFields(t *testing.T) {
	a := newAPI(t, 3)
	const pan = "+4929 1234 5678 9015" // Visa, Luhn-valid
	var reg struct {
		Register session
	}
	r := a.do(`mutation($in: RegisterInput!) { register(input: $in) { `+authFields+` } }`,
		map[string]any{"in": map[string]any{"email": "pan@example.com", "password": "a long enough passphrase", "name": "P", "phone": pan}})
	if len(r.Errors) == 0 {
		if err := json.Unmarshal(r.Data, &reg); err != nil {
			t.Fatal(err)
		}
		if reg.Register.AccessToken != "" {
			me := a.as(reg.Register.AccessToken, `{ me { phone } }`, nil)
			t.Errorf("register stored a card number as the phone: %s", me.Data)
		}
	}
	for name, q := range map[string]string{
		"search":  `query($q: String!) { search(query: $q) { totalCount } }`,
		"suggest": `query($q: String!) { suggest(prefix: $q) { __typename } }`,
		// A variable used as a phone AND as a name is scanned like any other.
		"shared": `mutation($q: String!) { register(input: {email: "s@example.com", password: "a long enough passphrase", name: $q, phone: $q}) { accessToken } }`,
	} {
		for _, v := range []string{pan, strings.TrimPrefix(pan, "+")} {
			r := a.do(q, map[string]any{"q": v})
			if len(r.Errors) == 0 || r.Errors[0].Extensions["code"] != "BAD_USER_INPUT" {
				t.Errorf("%s with card number %q: errors %+v (want the card guard's BAD_USER_INPUT)", name, v, r.Errors)
			}
		}
		if name == "shared" {
			continue
		}
		r := a.do(q, map[string]any{"q": "Dune"})
		if len(r.Errors) != 0 {
			t.Errorf("%s with a plain query: %+v", name, r.Errors)
		}
	}
	// In a phone field, as a literal or through a variable, a real phone that passes Luhn
	// reaches register.
	const phone = "+5511912345676" // passes Luhn
	for i, q := range []string{
		`mutation($p: String) { register(input: {email: "ph0@example.com", password: "a long enough passphrase", name: "P", phone: $p}) { ` + authFields + ` } }`,
		`mutation { register(input: {email: "ph1@example.com", password: "a long enough passphrase", name: "P", phone: "` + phone + `"}) { ` + authFields + ` } }`,
	} {
		var out struct{ Register session }
		a.ok(q, map[string]any{"p": phone}, &out)
		if out.Register.AccessToken == "" {
			t.Errorf("query %d: register with phone %s: %+v", i, phone, out.Register)
		}
	}
	// Outside a phone field the same phone is scanned like any text.
	r = a.do(`query($p: String!) { search(query: $p) { totalCount } }`, map[string]any{"p": phone})
	if len(r.Errors) == 0 {
		t.Errorf("a Luhn-passing phone in a search box passed the card guard")
	}
}
