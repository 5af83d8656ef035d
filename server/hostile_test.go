package server_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/auth"
	"github.com/shopfront/bookstore/identity"
	"github.com/shopfront/bookstore/internal/testdb"
	"github.com/shopfront/bookstore/search"
	"github.com/shopfront/bookstore/server"
)

// The hostile-request suite: requests an attacker, a broken client or a fuzzer sends.
// Each must get a clean, typed refusal — JSON, a stable extensions.code, the right HTTP
// status — and leave the server healthy: /healthz answers, a normal query still works,
// and no goroutine is left behind. Everything runs through the real handler
// (server.New) over HTTP against the real PostgreSQL test database.

// hreq is one raw request; zero fields take the usual values (POST /graphql, JSON).
type hreq struct {
	method, path  string
	contentType   string // "" = application/json; "none" = no header
	accept        string // "" = graphql-response+json, then json
	header        http.Header
	body          []byte
	chunked       bool // send without Content-Length
	origin        string
	authorization string
}

type hresp struct {
	status  int
	header  http.Header
	raw     []byte
	hasData bool
	data    json.RawMessage
	errors  []gqlError
	took    time.Duration
}

func (r hresp) code() string {
	if len(r.errors) == 0 {
		return ""
	}
	c, _ := r.errors[0].Extensions["code"].(string)
	return c
}

// hclient sends raw requests to one server, over its own connections (so that the
// goroutine check can close them).
type hclient struct {
	t    *testing.T
	base string
	c    *http.Client
}

func newHClient(t *testing.T, base string) *hclient {
	t.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: 4}
	t.Cleanup(tr.CloseIdleConnections)
	return &hclient{t: t, base: base, c: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

func (h *hclient) send(q hreq) hresp {
	h.t.Helper()
	method, path := q.method, q.path
	if method == "" {
		method = http.MethodPost
	}
	if path == "" {
		path = "/graphql"
	}
	var body io.Reader
	if q.body != nil {
		body = bytes.NewReader(q.body)
		if q.chunked {
			body = io.MultiReader(body) // hides the length: Transfer-Encoding: chunked
		}
	}
	req, err := http.NewRequest(method, h.base+path, body)
	if err != nil {
		h.t.Fatal(err)
	}
	for k, v := range q.header {
		req.Header[k] = v
	}
	switch q.contentType {
	case "":
		if q.body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
	case "none":
	default:
		req.Header.Set("Content-Type", q.contentType)
	}
	if q.accept == "" {
		q.accept = "application/graphql-response+json, application/json;q=0.9"
	}
	req.Header.Set("Accept", q.accept)
	if q.origin != "" {
		req.Header.Set("Origin", q.origin)
	}
	if q.authorization != "" {
		req.Header.Set("Authorization", q.authorization)
	}
	start := time.Now()
	resp, err := h.c.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	out := hresp{status: resp.StatusCode, header: resp.Header, raw: raw, took: time.Since(start)}
	if len(bytes.TrimSpace(raw)) > 0 && isJSON(resp.Header) {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err != nil {
			h.t.Fatalf("%s %s: %d with a body that is not JSON: %.300s", method, path, resp.StatusCode, raw)
		}
		out.data, out.hasData = m["data"]
		if e, ok := m["errors"]; ok {
			if err := json.Unmarshal(e, &out.errors); err != nil {
				h.t.Fatalf("errors is not a list of GraphQL errors: %s", e)
			}
		}
	}
	return out
}

func isJSON(h http.Header) bool {
	ct := h.Get("Content-Type")
	return strings.HasPrefix(ct, "application/json") || strings.HasPrefix(ct, "application/graphql-response+json")
}

// gql posts one operation as a JSON body.
func (h *hclient) gql(query string, vars map[string]any, mod ...func(*hreq)) hresp {
	h.t.Helper()
	q := hreq{body: gqlBody(query, vars)}
	for _, m := range mod {
		m(&q)
	}
	return h.send(q)
}

func gqlBody(query string, vars map[string]any) []byte {
	b, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		panic(err)
	}
	return b
}

// refused asserts a typed refusal: the status, a JSON body whose first error has code
// and, for anything but 200, no "data" (nothing was executed).
func refused(t *testing.T, r hresp, status int, code string) {
	t.Helper()
	if r.status != status || r.code() != code {
		t.Fatalf("got %d %q, want %d %s: %.400s", r.status, r.code(), status, code, r.raw)
	}
	if !isJSON(r.header) {
		t.Fatalf("Content-Type %q, want JSON", r.header.Get("Content-Type"))
	}
	if status != http.StatusOK && r.hasData {
		t.Fatalf("a refused request answered data: %.300s", r.raw)
	}
	for _, e := range r.errors {
		if e.Message == "" || e.Extensions["code"] == nil {
			t.Fatalf("an error without message or code: %+v", e)
		}
	}
}

// fieldErrors asserts an executed request (200) whose every error has one of codes.
func fieldErrors(t *testing.T, r hresp, codes ...string) {
	t.Helper()
	if r.status != http.StatusOK || len(r.errors) == 0 {
		t.Fatalf("got %d with %d errors, want 200 with %v: %.300s", r.status, len(r.errors), codes, r.raw)
	}
	for _, e := range r.errors {
		if c, _ := e.Extensions["code"].(string); !slices.Contains(codes, c) {
			t.Fatalf("error code %q (%s), want one of %v", c, e.Message, codes)
		}
	}
}

// healthy asserts that the server still serves: /healthz and a normal catalog query.
func (h *hclient) healthy(books int) {
	h.t.Helper()
	if r := h.send(hreq{method: http.MethodGet, path: "/healthz"}); r.status != http.StatusOK {
		h.t.Fatalf("/healthz = %d after the hostile requests", r.status)
	}
	r := h.gql(`{ books(first: 2) { totalCount edges { node { title authors { name } } } } }`, nil)
	var out struct{ Books struct{ TotalCount int } }
	if r.status != http.StatusOK || len(r.errors) > 0 || json.Unmarshal(r.data, &out) != nil || out.Books.TotalCount != books {
		h.t.Fatalf("a normal query after the hostile requests: %d %.300s", r.status, r.raw)
	}
}

// goroutines returns the goroutine count once the client's connections are closed and
// the count has stopped falling.
func (h *hclient) goroutines() int {
	h.c.CloseIdleConnections()
	n := runtime.NumGoroutine()
	for range 20 {
		time.Sleep(25 * time.Millisecond)
		m := runtime.NumGoroutine()
		if m >= n {
			return m
		}
		n = m
	}
	return n
}

// noLeak waits (up to 5s) for the goroutine count to come back to about base.
func (h *hclient) noLeak(base int) {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := h.goroutines()
		if n <= base+5 {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			h.t.Fatalf("%d goroutines after the hostile requests, %d before:\n%s", n, base, buf)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func nested(open string, n int, leaf string) string {
	return strings.Repeat(open+" { ", n) + leaf + strings.Repeat(" }", n)
}

// TestHostileRequestsGetTypedRefusals sends malformed, oversized and amplifying requests.
// Each is refused with its status and code before anything runs (no SQL statement), and
// afterwards the server serves normally and has no more goroutines than before.
func TestHostileRequestsGetTypedRefusals(t *testing.T) {
	const books = 20
	a := newAPIWith(t, books, func(c *server.Config) { c.ResponseTTL = -1 })
	h := newHClient(t, a.url)
	h.healthy(books)
	base := h.goroutines()

	aliases := func(n int, field string) string {
		var b strings.Builder
		b.WriteString("{")
		for i := range n {
			fmt.Fprintf(&b, " a%d: %s", i, field)
		}
		return b.String() + " }"
	}
	var bomb strings.Builder // each fragment spreads the next twice: 2^40 fields expanded
	bomb.WriteString("{ ...F0 }\n")
	for i := range 40 {
		fmt.Fprintf(&bomb, "fragment F%d on Query { ...F%d ...F%d }\n", i, i+1, i+1)
	}
	bomb.WriteString("fragment F40 on Query { __typename }\n")
	var ibomb strings.Builder // the same built of introspection fields: 2^20 __type
	ibomb.WriteString("{ ...F20 }\n")
	ibomb.WriteString(`fragment F0 on Query { __type(name: "Query") { name } }` + "\n")
	for i := 1; i <= 20; i++ {
		fmt.Fprintf(&ibomb, "fragment F%d on Query { ...F%d ...F%d }\n", i, i-1, i-1)
	}
	var frags strings.Builder
	frags.WriteString("{ ")
	for i := range 1000 {
		fmt.Fprintf(&frags, "...F%d ", i)
	}
	frags.WriteString("}\n")
	for i := range 1000 {
		fmt.Fprintf(&frags, "fragment F%d on Query { __typename }\n", i)
	}
	slugs := `"` + strings.Repeat(`a", "`, 20_000) + `a"`
	huge := strings.Repeat("x", 1<<20)

	for _, tc := range []struct {
		name   string
		req    hreq
		status int
		code   string
		says   string // the message mentions it
		fast   bool   // refused in well under a second, however costly it asks to be
	}{
		// Shape: depth, aliases, fragments, repetition, size of the document.
		{name: "categories.children nested 50 deep",
			req:    hreq{body: gqlBody(`{ categories { `+nested("children", 49, "slug")+` } }`, nil)},
			status: 400, code: server.CodeDepthLimitExceeded},
		{name: "books.authors.books... nested 50 deep, one per page (cheap for the complexity limit)",
			req: hreq{body: gqlBody(`{ books(first: 1) { edges { node { `+
				strings.Repeat("authors { books(first: 1) { edges { node { ", 12)+"title"+strings.Repeat(" } } } }", 12)+` } } } }`, nil)},
			status: 400, code: server.CodeDepthLimitExceeded},
		{name: "introspection nested through fields/type 3 deep",
			req:    hreq{body: gqlBody(`{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }`, nil)},
			status: 400, code: "GRAPHQL_VALIDATION_FAILED"},
		{name: "1,000 aliases of search (priced 1 each by the complexity limit)",
			req:    hreq{body: gqlBody(aliases(1000, `search(query: "x") { totalCount }`), nil)},
			status: 400, code: server.CodeAliasLimitExceeded, fast: true},
		{name: "10 aliases of a nested 100 x 100 page",
			req:    hreq{body: gqlBody(aliases(10, `books(first: 100) { edges { node { reviews(first: 100) { edges { node { body } } } } } }`), nil)},
			status: 400, code: "COMPLEXITY_LIMIT_EXCEEDED"},
		{name: "fragment bomb: 40 fragments each spreading the next twice",
			req:    hreq{body: gqlBody(bomb.String(), nil)},
			status: 400, code: "COMPLEXITY_LIMIT_EXCEEDED", says: "fragments are expanded", fast: true},
		{name: "fragment bomb of introspection fields: 20 fragments each spreading the previous twice",
			req:    hreq{body: gqlBody(ibomb.String(), nil)},
			status: 400, code: "COMPLEXITY_LIMIT_EXCEEDED", says: "fragments are expanded", fast: true},
		{name: "the same field 14,000 times (quadratic validation)",
			req:    hreq{body: gqlBody("{ "+strings.Repeat("__typename ", 14_000)+"}", nil)},
			status: 400, code: "GRAPHQL_VALIDATION_FAILED", fast: true},
		{name: "1,000 fragments spread side by side",
			req:    hreq{body: gqlBody(frags.String(), nil)},
			status: 400, code: "GRAPHQL_VALIDATION_FAILED", fast: true},
		{name: "a document of 20,000 tokens",
			req:    hreq{body: gqlBody(`{ search(query: "x", filter: {categorySlugs: [`+slugs+`]}) { totalCount } }`, nil)},
			status: 400, code: "GRAPHQL_PARSE_FAILED", says: "token limit", fast: true},

		// Batching is not supported, and says so.
		{name: "a batch (JSON array of operations)",
			req:    hreq{body: []byte(`[{"query":"{ __typename }"},{"query":"{ books { totalCount } }"}]`)},
			status: 400, code: server.CodeBadRequest, says: "array"},

		// Size.
		{name: "1 MiB string argument (over the body limit)",
			req:    hreq{body: gqlBody(`query($q: String!) { search(query: $q) { totalCount } }`, map[string]any{"q": huge})},
			status: 413, code: server.CodePayloadTooLarge},
		{name: "5 MiB body without Content-Length",
			req:    hreq{body: []byte(`{"query": "` + strings.Repeat("{", 5<<20) + `"}`), chunked: true},
			status: 413, code: server.CodePayloadTooLarge},

		// Encoding and syntax.
		{name: "invalid UTF-8",
			req:    hreq{body: []byte("{\"query\": \"{ search(query: \\\"\xc3\x28\\\") { totalCount } }\"}")},
			status: 400, code: server.CodeBadRequest, says: "UTF-8"},
		{name: "truncated JSON", req: hreq{body: []byte(`{"query": "{ books { totalCount } }"`)}, status: 400, code: server.CodeBadRequest},
		{name: "trailing comma", req: hreq{body: []byte(`{"query": "{ __typename }",}`)}, status: 400, code: server.CodeBadRequest},
		{name: "JSON null", req: hreq{body: []byte(`null`)}, status: 400, code: server.CodeBadRequest},
		{name: "a JSON string", req: hreq{body: []byte(`"{ __typename }"`)}, status: 400, code: server.CodeBadRequest},
		{name: "query is a list", req: hreq{body: []byte(`{"query": ["{ __typename }"]}`)}, status: 400, code: server.CodeBadRequest},
		{name: "variables is a list", req: hreq{body: []byte(`{"query": "{ __typename }", "variables": [1]}`)}, status: 400, code: server.CodeBadRequest},
		{name: "200,000 tiny strings in a list variable",
			req: hreq{body: gqlBody(`query($s: [String!]) { search(query: "x", filter: {categorySlugs: $s}) { totalCount } }`,
				map[string]any{"s": strings.Split(strings.Repeat("a,", 200_000), ",")})},
			status: 400, code: "BAD_USER_INPUT", says: "more than 10000 values", fast: true},
		{name: "variables nested 100,000 deep",
			req:    hreq{body: []byte(`{"query": "{ __typename }", "variables": {"a": ` + strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000) + `}}`)},
			status: 400, code: server.CodeBadRequest},
		{name: "binary garbage", req: hreq{body: []byte{0x1f, 0x8b, 0x08, 0x00, 0xff, 0x00}}, status: 400, code: server.CodeBadRequest},

		// Media types and methods.
		{name: "text/plain", req: hreq{contentType: "text/plain", body: gqlBody("{ __typename }", nil)}, status: 415, code: server.CodeUnsupportedMediaType},
		{name: "form post", req: hreq{contentType: "application/x-www-form-urlencoded", body: []byte("query=%7B__typename%7D")}, status: 415, code: server.CodeUnsupportedMediaType},
		{name: "multipart", req: hreq{contentType: "multipart/form-data; boundary=x", body: []byte("--x\r\n\r\n{}\r\n--x--")}, status: 415, code: server.CodeUnsupportedMediaType},
		{name: "application/graphql", req: hreq{contentType: "application/graphql", body: []byte("{ __typename }")}, status: 415, code: server.CodeUnsupportedMediaType},
		{name: "JSON in latin-1", req: hreq{contentType: "application/json; charset=iso-8859-1", body: gqlBody("{ __typename }", nil)}, status: 415, code: server.CodeUnsupportedMediaType},
		{name: "no Content-Type", req: hreq{contentType: "none", body: gqlBody("{ __typename }", nil)}, status: 415, code: server.CodeUnsupportedMediaType},
		{name: "accepts only HTML", req: hreq{accept: "text/html", body: gqlBody("{ __typename }", nil)}, status: 406, code: server.CodeNotAcceptable},
		{name: "PUT", req: hreq{method: http.MethodPut, body: gqlBody("{ __typename }", nil)}, status: 405, code: server.CodeMethodNotAllowed},
		{name: "DELETE", req: hreq{method: http.MethodDelete}, status: 405, code: server.CodeMethodNotAllowed},
		{name: "a mutation over GET", req: hreq{method: http.MethodGet, path: "/graphql?query=" + "mutation%7Blogout(refreshToken%3A%22x%22)%7Bok%7D%7D"}, status: 405, code: server.CodeMethodNotAllowed},
		{name: "an unknown path", req: hreq{method: http.MethodGet, path: "/admin/../../etc/passwd"}, status: 404, code: "NOT_FOUND"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := *h
			h.t = t
			before := a.queries.n.Load()
			r := h.send(tc.req)
			refused(t, r, tc.status, tc.code)
			if tc.says != "" && !strings.Contains(r.errors[0].Message, tc.says) {
				t.Fatalf("message %q does not mention %q", r.errors[0].Message, tc.says)
			}
			if n := a.queries.n.Load() - before; n != 0 {
				t.Fatalf("a refused request ran %d SQL statements", n)
			}
			if tc.fast && r.took > 2*time.Second { // generous: the race detector slows all
				t.Fatalf("refused after %v; the check itself is too costly", r.took)
			}
		})
	}

	// Strings longer than any field accepts, under the body limit: refused as
	// BAD_USER_INPUT naming the variable before any resolver (or the card scan, whose
	// Unicode normalisation costs ~0.4 s per MiB) looks at them, never a 500 or an echo.
	long := strings.Repeat("e\u0301", 100<<10)
	for _, q := range []string{
		`query($s: String!) { search(query: $s) { totalCount } }`,
		`query($s: String!) { suggest(prefix: $s) { text } }`,
		`query($s: String!) { category(slug: $s) { id } }`,
		`query($s: String!) { bookByIsbn(isbn: $s) { id } }`,
		`query($s: ID!) { node(id: $s) { id } }`,
		`query($s: String!) { books(after: $s) { totalCount } }`,
	} {
		r := h.gql(q, map[string]any{"s": long})
		refused(t, r, http.StatusBadRequest, "BAD_USER_INPUT")
		if f := r.errors[0].Extensions["field"]; f != "$s" {
			t.Fatalf("%s: field %v, want $s", q, f)
		}
		if len(r.raw) > 10<<10 {
			t.Fatalf("%s: a %d-byte answer to a 200 KB argument: is it echoed?", q, len(r.raw))
		}
	}

	h.healthy(books)
	h.noLeak(base)
}

// TestHostileTokens: a bad credential never signs anyone in, and never breaks a
// request: fields that need a customer answer UNAUTHENTICATED (saying "expired" when it
// is), the catalog still answers as to anyone.
func TestHostileTokens(t *testing.T) {
	keys, err := auth.DevKeyring()
	if err != nil {
		t.Fatal(err)
	}
	tokens := auth.NewTokens(keys, auth.TokenConfig{})
	a := newAPIWith(t, 3, func(c *server.Config) { c.ResponseTTL = -1; c.Tokens = tokens })
	h := newHClient(t, a.url)
	id := uuid.New() // no such customer: `me` is null for a valid token
	valid, _, err := tokens.Issue(auth.Identity{CustomerID: id, Role: auth.RoleCustomer})
	if err != nil {
		t.Fatal(err)
	}
	past := auth.NewTokens(keys, auth.TokenConfig{Now: func() time.Time { return time.Now().Add(-24 * time.Hour) }})
	expired, _, err := past.Issue(auth.Identity{CustomerID: id, Role: auth.RoleCustomer})
	if err != nil {
		t.Fatal(err)
	}
	otherKeys, _ := auth.DevKeyring()
	forged, _, err := auth.NewTokens(otherKeys, auth.TokenConfig{}).Issue(auth.Identity{CustomerID: id, Role: auth.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	claims := fmt.Sprintf(`{"iss":%q,"aud":[%q],"sub":%q,"role":"ADMIN","exp":%d,"nbf":%d,"iat":%d}`,
		auth.DefaultIssuer, auth.DefaultAudience, id, time.Now().Add(time.Hour).Unix(), time.Now().Add(-time.Minute).Unix(), time.Now().Unix())
	enc := base64.RawURLEncoding.EncodeToString
	algNone := enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc([]byte(claims)) + "."
	hsInput := enc([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc([]byte(claims))
	mac := hmac.New(sha256.New, []byte("secret"))
	mac.Write([]byte(hsInput))
	hs256 := hsInput + "." + enc(mac.Sum(nil))
	// The valid token's claims, re-signed by nobody: the signature of another token.
	parts := strings.Split(valid, ".")
	adminClaims := enc([]byte(claims))
	swapped := parts[0] + "." + adminClaims + "." + parts[2]

	const (
		me      = `{ me { id email } }`
		address = `mutation { addAddress(input: {recipient: "X", line1: "1 Main St", city: "Town", country: "US"}) { address { id } userErrors { code } } }`
		catalog = `{ books(first: 2) { totalCount edges { node { title } } } }`
	)
	if r := h.gql(me, nil, func(q *hreq) { q.authorization = "Bearer " + valid }); r.status != 200 || r.code() == "UNAUTHENTICATED" {
		t.Fatalf("me with a valid token: %d %.300s", r.status, r.raw)
	}
	for _, tc := range []struct{ name, header, says string }{
		{"expired", "Bearer " + expired, "expired"},
		{"signed by another key", "Bearer " + forged, "invalid"},
		{"alg none", "Bearer " + algNone, "invalid"},
		{"HS256 with a guessed secret", "Bearer " + hs256, "invalid"},
		{"claims swapped under a real signature", "Bearer " + swapped, "invalid"},
		{"garbage", "Bearer x.y.z", "invalid"},
		{"not even a JWT", "Bearer " + strings.Repeat("A", 40), "invalid"},
		{"empty bearer", "Bearer ", "invalid"},
		{"basic auth", "Basic dXNlcjpwYXNzd29yZA==", "invalid"},
		{"10 KB token", "Bearer " + strings.Repeat("a.", 5<<10), "invalid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := *h
			h.t = t
			with := func(q *hreq) { q.authorization = tc.header }
			for _, q := range []string{address, me} {
				r := h.gql(q, nil, with)
				fieldErrors(t, r, "UNAUTHENTICATED")
				if !strings.Contains(r.errors[0].Message, tc.says) {
					t.Fatalf("%s: message %q, want it to say %q", q, r.errors[0].Message, tc.says)
				}
			}
			r := h.gql(catalog, nil, with)
			if r.status != 200 || len(r.errors) > 0 || !strings.Contains(string(r.data), `"totalCount":3`) {
				t.Fatalf("the catalog with a bad token: %d %.300s", r.status, r.raw)
			}
		})
	}
	// Two Authorization headers: refused as a whole, not "the first one wins".
	r := h.gql(address, nil, func(q *hreq) {
		q.header = http.Header{"Authorization": {"Bearer " + valid, "Bearer " + forged}}
	})
	fieldErrors(t, r, "UNAUTHENTICATED")
	h.healthy(3)
}

// TestHostileStringsInEveryQueryArgument reads the Query type by introspection and, for
// every argument of every field (each field of an input object, each element type of a
// list), sends injection-like strings (SQL, NUL, format verbs, path traversal, huge
// numbers) one argument at a time. Nothing may answer INTERNAL, untyped or 5xx, and the
// catalog must be intact afterwards.
func TestHostileStringsInEveryQueryArgument(t *testing.T) {
	const books = 10
	a := newAPIWith(t, books, func(c *server.Config) { c.ResponseTTL = -1 })
	h := newHClient(t, a.url)
	schema := introspect(t, h)

	strs := []string{
		`' OR '1'='1`,
		`'; DROP TABLE books; --`,
		`" OR ""="`,
		`1) OR (1=1`,
		`%' OR 1=1 --`,
		`\'; SELECT pg_sleep(5); --`,
		"a\x00b",
		`$1 %s %d %n {{.}} ${x}`,
		`../../../../etc/passwd`,
		`<script>alert(1)</script>`,
		`9780306406157' UNION SELECT * FROM customers --`,
		"\u202e\ufeff\U0001F4A5",
		"",
	}
	ints := []any{2147483647, -2147483648, 0, -1}
	floats := []any{1e308, -1e308, 0.5e-300}

	sent, codes := 0, map[string]int{}
	for _, f := range schema.queryFields() {
		for _, target := range f.targets(schema) {
			var values []any
			switch target.scalar {
			case "Int":
				values = ints
			case "Float":
				values = floats
			case "Boolean":
				continue
			default:
				for _, s := range strs {
					values = append(values, s)
				}
			}
			for _, v := range values {
				q, vars := f.request(schema, target, v)
				r := h.gql(q, vars)
				sent++
				// The operations are valid, only their values are hostile: 200, but for a
				// page size too costly to run (first: 2147483647).
				if !isJSON(r.header) || r.status != http.StatusOK &&
					(r.status != http.StatusBadRequest || r.code() != "COMPLEXITY_LIMIT_EXCEEDED") {
					t.Fatalf("%s with %s = %#v: %d %.300s\n%s", f.Name, target.path, v, r.status, r.raw, q)
				}
				for _, e := range r.errors {
					c, _ := e.Extensions["code"].(string)
					if c == "" || c == "INTERNAL" || strings.HasPrefix(c, "GRAPHQL_") {
						t.Fatalf("%s with %s = %#v: error %q (%s)\n%s", f.Name, target.path, v, c, e.Message, q)
					}
					codes[c]++
				}
			}
		}
	}
	if sent < 200 {
		t.Fatalf("only %d requests: the schema walk found too few arguments", sent)
	}
	t.Logf("%d requests over every argument of %d Query fields; error codes: %v", sent, len(schema.queryFields()), codes)

	// Inline, in the document itself, too.
	for _, s := range strs[:6] {
		lit, _ := json.Marshal(s) // a JSON string is a GraphQL string literal
		r := h.gql(`{ search(query: `+string(lit)+`) { totalCount } bookByIsbn(isbn: `+string(lit)+`) { id } }`, nil)
		for _, e := range r.errors {
			if c, _ := e.Extensions["code"].(string); c == "" || c == "INTERNAL" {
				t.Fatalf("inline %q: %+v", s, e)
			}
		}
	}
	var n int
	if err := a.db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM books").Scan(&n); err != nil || n != books {
		t.Fatalf("books after the injection attempts: %d, %v", n, err)
	}
	h.healthy(books)
}

// The part of the introspection result the injection test walks.
type ischema struct {
	QueryType struct{ Name string }
	Types     []itype
}

type itype struct {
	Kind, Name  string
	Fields      []ifield
	InputFields []iarg
	EnumValues  []struct{ Name string }
}

type ifield struct {
	Name string
	Args []iarg
	Type itypeRef
}

type iarg struct {
	Name string
	Type itypeRef
}

type itypeRef struct {
	Kind   string
	Name   *string
	OfType *itypeRef
}

func (r itypeRef) named() itypeRef {
	for r.OfType != nil {
		r = *r.OfType
	}
	return r
}

func (r itypeRef) String() string {
	switch r.Kind {
	case "NON_NULL":
		return r.OfType.String() + "!"
	case "LIST":
		return "[" + r.OfType.String() + "]"
	}
	return *r.Name
}

func introspect(t *testing.T, h *hclient) *ischema {
	t.Helper()
	r := h.gql(`{ __schema { queryType { name } types { kind name
		fields { name args { name type { ...T } } type { ...T } }
		inputFields { name type { ...T } }
		enumValues { name } } } }
		fragment T on __Type { kind name ofType { kind name ofType { kind name ofType { kind name } } } }`, nil)
	var out struct {
		Schema ischema `json:"__schema"`
	}
	if r.status != 200 || len(r.errors) > 0 || json.Unmarshal(r.data, &out) != nil {
		t.Fatalf("introspection: %d %.300s", r.status, r.raw)
	}
	return &out.Schema
}

func (s *ischema) typ(name string) *itype {
	for i := range s.Types {
		if s.Types[i].Name == name {
			return &s.Types[i]
		}
	}
	return nil
}

func (s *ischema) queryFields() []ifield { return s.typ(s.QueryType.Name).Fields }

// target is one place a hostile value goes: an argument, or a field of an input object
// argument (path "filter.categorySlug"), of a scalar type.
type target struct {
	arg    string   // the argument
	field  []string // the input object fields below it, if any
	scalar string
	path   string
}

func (f ifield) targets(s *ischema) []target {
	var out []target
	var walk func(arg string, below []string, t itypeRef, depth int)
	walk = func(arg string, below []string, t itypeRef, depth int) {
		n := t.named()
		switch n.Kind {
		case "SCALAR":
			out = append(out, target{arg: arg, field: below, scalar: *n.Name, path: strings.Join(append([]string{arg}, below...), ".")})
		case "INPUT_OBJECT":
			if depth > 3 {
				return
			}
			for _, in := range s.typ(*n.Name).InputFields {
				walk(arg, append(slices.Clone(below), in.Name), in.Type, depth+1)
			}
		}
	}
	for _, a := range f.Args {
		walk(a.Name, nil, a.Type, 0)
	}
	return out
}

// request builds the query for f with v at target, every other required argument given
// a plain value, and each argument passed as a variable.
func (f ifield) request(s *ischema, at target, v any) (string, map[string]any) {
	vars := map[string]any{}
	var decl, args []string
	for _, a := range f.Args {
		var val any
		switch {
		case a.Name == at.arg:
			val = place(s, a.Type, at.field, v)
		case a.Type.Kind == "NON_NULL":
			val = plain(s, a.Type)
		default:
			continue
		}
		vars[a.Name] = val
		decl = append(decl, "$"+a.Name+": "+a.Type.String())
		args = append(args, a.Name+": $"+a.Name)
	}
	q := "query"
	if len(decl) > 0 {
		q += "(" + strings.Join(decl, ", ") + ")"
	}
	q += " { " + f.Name
	if len(args) > 0 {
		q += "(" + strings.Join(args, ", ") + ")"
	}
	if k := f.Type.named().Kind; k == "OBJECT" || k == "INTERFACE" || k == "UNION" {
		q += " { __typename }"
	}
	return q + " }", vars
}

// place returns a value of type t holding v at the input-object path below (lists get
// one element).
func place(s *ischema, t itypeRef, below []string, v any) any {
	switch t.Kind {
	case "NON_NULL":
		return place(s, *t.OfType, below, v)
	case "LIST":
		return []any{place(s, *t.OfType, below, v)}
	case "INPUT_OBJECT":
		obj := map[string]any{}
		for _, in := range s.typ(*t.Name).InputFields {
			switch {
			case len(below) > 0 && in.Name == below[0]:
				obj[in.Name] = place(s, in.Type, below[1:], v)
			case in.Type.Kind == "NON_NULL":
				obj[in.Name] = plain(s, in.Type)
			}
		}
		return obj
	}
	return v
}

// plain is a harmless value of type t.
func plain(s *ischema, t itypeRef) any {
	switch t.Kind {
	case "NON_NULL":
		return plain(s, *t.OfType)
	case "LIST":
		return []any{plain(s, *t.OfType)}
	case "ENUM":
		return s.typ(*t.Name).EnumValues[0].Name
	case "INPUT_OBJECT":
		return place(s, t, nil, nil)
	}
	switch *t.Name {
	case "Int", "Float":
		return 1
	case "Boolean":
		return true
	}
	return "plain"
}

// TestRateLimitAnswers429WithRetryAfter: over its budget a client gets 429 with
// Retry-After and RATE_LIMITED; health checks are never limited; a signed-in customer
// spends a budget of their own; IPv6 clients are counted per /64.
func TestRateLimitAnswers429WithRetryAfter(t *testing.T) {
	local := func(n int) auth.Limiter {
		l, err := auth.NewLocalLimiter(auth.Limit{Rate: n, Period: time.Minute, Burst: n}, auth.LocalOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	a := newAPIWith(t, 3, func(c *server.Config) {
		c.ResponseTTL = -1
		c.RateLimit = server.RateLimit{PerIP: local(3), PerUser: local(5)}
	})
	h := newHClient(t, a.url)
	const q = `{ books(first: 1) { totalCount } }`
	for i := range 3 {
		if r := h.gql(q, nil); r.status != 200 || len(r.errors) > 0 {
			t.Fatalf("request %d within the budget: %d %.200s", i+1, r.status, r.raw)
		}
	}
	r := h.gql(q, nil)
	refused(t, r, http.StatusTooManyRequests, "RATE_LIMITED")
	retry, err := strconv.Atoi(r.header.Get("Retry-After"))
	if err != nil || retry < 1 || retry > 20 { // 3 a minute: one every 20s
		t.Fatalf("Retry-After %q", r.header.Get("Retry-After"))
	}
	if !strings.Contains(r.errors[0].Message, strconv.Itoa(retry)) {
		t.Fatalf("the message %q does not say the same wait as Retry-After: %d", r.errors[0].Message, retry)
	}
	if r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("a 429 without Cache-Control: no-store")
	}
	// GraphiQL is limited too; health checks never.
	if r := h.send(hreq{method: http.MethodGet, path: "/"}); r.status != http.StatusTooManyRequests {
		t.Fatalf("GraphiQL over the budget: %d", r.status)
	}
	for range 10 {
		for _, p := range []string{"/healthz", "/readyz"} {
			if r := h.send(hreq{method: http.MethodGet, path: p}); r.status != http.StatusOK {
				t.Fatalf("%s while the client is limited: %d", p, r.status)
			}
		}
	}

	// A signed-in customer has a budget of their own (5), not the exhausted IP's.
	token, _, err := a.tokens.Issue(auth.Identity{CustomerID: uuid.New(), Role: auth.RoleCustomer})
	if err != nil {
		t.Fatal(err)
	}
	signedIn := func(q *hreq) { q.authorization = "Bearer " + token }
	for i := range 5 {
		if r := h.gql(q, nil, signedIn); r.status != 200 {
			t.Fatalf("signed-in request %d: %d %.200s", i+1, r.status, r.raw)
		}
	}
	refused(t, h.gql(q, nil, signedIn), http.StatusTooManyRequests, "RATE_LIMITED")
	// A forged token is anonymous: it spends (exhausted) IP budget, not a customer's.
	refused(t, h.gql(q, nil, func(q *hreq) { q.authorization = "Bearer forged.token.here" }), http.StatusTooManyRequests, "RATE_LIMITED")

	// Behind a trusted proxy, IPv6 clients are counted per /64: another address of the
	// same /64 shares the budget, another /64 has its own.
	b := newAPIWith(t, 1, func(c *server.Config) {
		c.ResponseTTL = -1
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
		c.RateLimit = server.RateLimit{PerIP: local(2)}
	})
	hb := newHClient(t, b.url)
	from := func(ip string) func(*hreq) {
		return func(q *hreq) { q.header = http.Header{"X-Forwarded-For": {ip}} }
	}
	for _, ip := range []string{"2001:db8:1:2::1", "2001:db8:1:2:ffff::9"} {
		if r := hb.gql(q, nil, from(ip)); r.status != 200 {
			t.Fatalf("%s: %d", ip, r.status)
		}
	}
	refused(t, hb.gql(q, nil, from("2001:db8:1:2::abcd")), http.StatusTooManyRequests, "RATE_LIMITED")
	if r := hb.gql(q, nil, from("2001:db8:1:3::1")); r.status != 200 {
		t.Fatalf("another /64 shares the budget: %d", r.status)
	}
	hb.healthy(1) // 127.0.0.1 itself (no X-Forwarded-For) has its own budget
}

// TestRateLimitIsSharedThroughRedis: with Redis the budget holds across instances; when
// Redis is unreachable each instance still limits on its own instead of failing.
func TestRateLimitIsSharedThroughRedis(t *testing.T) {
	rdb := testdb.Redis(t)
	name := "test-" + uuid.NewString() // this test's own keys
	limit := auth.Limit{Rate: 4, Period: time.Minute, Burst: 4}
	instance := func(rdb *redis.Client) *hclient {
		l, err := server.NewRateLimiter(rdb, name, limit, discardLog())
		if err != nil {
			t.Fatal(err)
		}
		a := newAPIWith(t, 1, func(c *server.Config) { c.ResponseTTL = -1; c.RateLimit = server.RateLimit{PerIP: l} })
		return newHClient(t, a.url)
	}
	x, y := instance(rdb), instance(rdb)
	const q = `{ books(first: 1) { totalCount } }`
	for i, h := range []*hclient{x, y, x, y} {
		if r := h.gql(q, nil); r.status != 200 {
			t.Fatalf("request %d: %d", i+1, r.status)
		}
	}
	for _, h := range []*hclient{x, y} {
		r := h.gql(q, nil)
		refused(t, r, http.StatusTooManyRequests, "RATE_LIMITED")
		if r.header.Get("Retry-After") == "" {
			t.Fatal("no Retry-After")
		}
	}

	down := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialerRetries: 1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { down.Close() })
	z := instance(down)
	for i := range 4 {
		if r := z.gql(q, nil); r.status != 200 {
			t.Fatalf("with Redis down, request %d: %d %.200s", i+1, r.status, r.raw)
		}
	}
	refused(t, z.gql(q, nil), http.StatusTooManyRequests, "RATE_LIMITED")
}

// TestCORSAllowsOnlyConfiguredOrigins: a preflight from an allowed origin gets the CORS
// headers (methods, Authorization and Apollo's headers, max age; no credentials), one
// from any other origin gets none, and without configured origins nobody does. Preflights
// spend no rate budget; a 429 carries the CORS headers so that the browser app can read
// it and its Retry-After.
func TestCORSAllowsOnlyConfiguredOrigins(t *testing.T) {
	const shop = "https://shop.example.com"
	lim, err := auth.NewLocalLimiter(auth.Limit{Rate: 2, Period: time.Minute, Burst: 2}, auth.LocalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a := newAPIWith(t, 1, func(c *server.Config) {
		c.ResponseTTL = -1
		c.CORSOrigins = []string{shop, "https://*.preview.example.com"}
		c.RateLimit = server.RateLimit{PerIP: lim}
	})
	h := newHClient(t, a.url)
	preflight := func(h *hclient, origin, headers string) hresp {
		return h.send(hreq{method: http.MethodOptions, origin: origin, header: http.Header{
			"Access-Control-Request-Method":  {"POST"},
			"Access-Control-Request-Headers": {headers},
		}})
	}
	for _, tc := range []struct {
		origin, headers string
		allowed         bool
	}{
		{shop, "authorization,content-type", true},
		{shop, "apollographql-client-name,apollographql-client-version,content-type", true},
		{"https://pr-42.preview.example.com", "content-type", true},
		{shop, "content-type,x-evil", false},
		{"https://evil.example", "authorization,content-type", false},
		{"https://shop.example.com.evil.example", "content-type", false},
		{"null", "content-type", false},
	} {
		r := preflight(h, tc.origin, tc.headers)
		acao := r.header.Get("Access-Control-Allow-Origin")
		if !tc.allowed {
			if acao != "" || r.header.Get("Access-Control-Allow-Methods") != "" {
				t.Fatalf("preflight from %s (%s) allowed: %v", tc.origin, tc.headers, r.header)
			}
			continue
		}
		if r.status != http.StatusNoContent || acao != tc.origin ||
			!strings.Contains(r.header.Get("Access-Control-Allow-Methods"), "POST") ||
			r.header.Get("Access-Control-Allow-Headers") != tc.headers ||
			r.header.Get("Access-Control-Max-Age") != "7200" ||
			r.header.Get("Access-Control-Allow-Credentials") != "" {
			t.Fatalf("preflight from %s: %d %v", tc.origin, r.status, r.header)
		}
	}
	// The preflights above spent nothing: the budget (2) is whole.
	for i := range 2 {
		r := h.gql(`{ books(first: 1) { totalCount } }`, nil, func(q *hreq) { q.origin = shop })
		if r.status != 200 || r.header.Get("Access-Control-Allow-Origin") != shop {
			t.Fatalf("request %d from the shop: %d %v", i+1, r.status, r.header)
		}
	}
	r := h.gql(`{ books(first: 1) { totalCount } }`, nil, func(q *hreq) { q.origin = shop })
	refused(t, r, http.StatusTooManyRequests, "RATE_LIMITED")
	if r.header.Get("Access-Control-Allow-Origin") != shop || !strings.Contains(r.header.Get("Access-Control-Expose-Headers"), "Retry-After") {
		t.Fatalf("a 429 the browser app cannot read: %v", r.header)
	}
	if r := h.gql(`{ __typename }`, nil, func(q *hreq) { q.origin = "https://evil.example" }); r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("a request from another origin got %q", r.header.Get("Access-Control-Allow-Origin"))
	}

	// No origins configured: same-origin only.
	b := newAPIWith(t, 0, func(c *server.Config) { c.ResponseTTL = -1 })
	hb := newHClient(t, b.url)
	if r := preflight(hb, shop, "content-type"); r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("without configured origins a preflight got %v", r.header)
	}
	if r := hb.gql(`{ __typename }`, nil, func(q *hreq) { q.origin = shop }); r.status != 200 || r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("without configured origins: %d %v", r.status, r.header)
	}
}

// stuckIndex is a search engine that never answers: it waits for the request's context.
type stuckIndex struct{ search.Index }

func (stuckIndex) Search(ctx context.Context, _ search.Query) (search.Result, error) {
	<-ctx.Done()
	return search.Result{}, ctx.Err()
}

// TestRequestTimeoutAnswersUnavailable: a request that outlives its deadline is answered
// at the deadline with UNAVAILABLE errors, not left hanging, and the server goes on.
func TestRequestTimeoutAnswersUnavailable(t *testing.T) {
	t.Run("a stuck dependency", func(t *testing.T) {
		const deadline = 300 * time.Millisecond
		a := newAPIWith(t, 2, func(c *server.Config) {
			c.ResponseTTL = -1
			c.Timeout = deadline
			c.Search = stuckIndex{c.Search}
		})
		h := newHClient(t, a.url)
		base := h.goroutines()
		r := h.gql(`{ search(query: "anything") { totalCount } }`, nil)
		fieldErrors(t, r, "UNAVAILABLE")
		if r.took < deadline || r.took > 5*time.Second {
			t.Fatalf("answered after %v with a %v deadline", r.took, deadline)
		}
		h.healthy(2)
		h.noLeak(base)
	})
	t.Run("a tiny deadline", func(t *testing.T) {
		a := newAPIWith(t, 2, func(c *server.Config) { c.ResponseTTL = -1; c.Timeout = time.Nanosecond })
		h := newHClient(t, a.url)
		r := h.gql(`{ books(first: 2) { totalCount edges { node { title authors { name } } } } categories { slug } }`, nil)
		fieldErrors(t, r, "UNAVAILABLE")
		if r.took > 5*time.Second {
			t.Fatalf("answered after %v", r.took)
		}
		if r := h.send(hreq{method: http.MethodGet, path: "/healthz"}); r.status != 200 {
			t.Fatalf("/healthz = %d", r.status)
		}
	})
}

// TestHostileIdentityAbuse: the identity review's findings (issue 9) as requests. Login
// cannot be made to burn CPU, tokens die with their session, a Customer's personal fields
// answer only their owner, and bad input is answered as bad input.
func TestHostileIdentityAbuse(t *testing.T) {
	var svc *identity.Service
	a := newAPIWith(t, 5, func(c *server.Config) {
		c.ResponseTTL = -1
		svc, c.Tokens = newSecurityWith(t, c.DB, func(ic *identity.Config) {
			ic.RegisterPerIP, _ = auth.NewLocalLimiter(auth.PerMinute(1000), auth.LocalOptions{})
		})
		c.Identity = svc
	})
	h := newHClient(t, a.url)
	base := h.goroutines()
	ctx := context.Background()
	login := `mutation($in: LoginInput!) { login(input: $in) { accessToken userErrors { code field } } }`

	// One credential field per operation, however it is spelled.
	var many strings.Builder
	many.WriteString(`mutation($in: LoginInput!) {`)
	for i := range 30 {
		fmt.Fprintf(&many, " l%d: login(input: $in) { accessToken }", i)
	}
	many.WriteString(" }")
	in := map[string]any{"in": map[string]any{"email": "x@example.com", "password": "whatever password"}}
	for name, q := range map[string]string{
		"30 aliases":         many.String(),
		"login and register": `mutation($in: LoginInput!, $r: RegisterInput!) { login(input: $in) { accessToken } register(input: $r) { accessToken } }`,
		"through a fragment": `mutation($in: LoginInput!) { ...F } fragment F on Mutation { a: login(input: $in) { accessToken } b: login(input: $in) { accessToken } }`,
		"refresh twice":      `mutation { a: refreshToken(token: "x") { accessToken } b: refreshToken(token: "y") { accessToken } }`,
	} {
		vars := in
		if strings.Contains(q, "$r") {
			vars = map[string]any{"in": in["in"], "r": map[string]any{"email": "y@example.com", "password": "whatever password", "name": "Y"}}
		}
		r := h.gql(q, vars)
		refused(t, r, http.StatusBadRequest, bookstore.CodeCredentialFieldLimit)
		_ = name
	}

	// A 960 KB email of decomposed accents is refused before anything normalises it, and
	// an email just over 254 bytes is a userError on the field, not UNAUTHENTICATED.
	r := h.gql(login, map[string]any{"in": map[string]any{"email": strings.Repeat("e\u0301", 320_000) + "@example.com", "password": "x"}})
	refused(t, r, http.StatusBadRequest, bookstore.CodeBadUserInput)
	var out struct {
		Login struct {
			AccessToken *string
			UserErrors  []struct {
				Code  string
				Field []string
			}
		}
	}
	for field, vars := range map[string]map[string]any{
		"email":    {"email": strings.Repeat("a", 250) + "@example.com", "password": "whatever password"},
		"password": {"email": "ann@example.com", "password": strings.Repeat("p", 129)},
	} {
		a.ok(login, map[string]any{"in": vars}, &out)
		if ue := out.Login.UserErrors; len(ue) != 1 || ue[0].Code != bookstore.CodeBadUserInput || strings.Join(ue[0].Field, ".") != "input."+field {
			t.Fatalf("oversized %s: %+v", field, ue)
		}
	}

	// Register reports every bad field; a Brazilian mobile is a phone, not a card.
	var reg struct {
		Register struct {
			AccessToken *string
			UserErrors  []struct {
				Code  string
				Field []string
			}
		}
	}
	regQ := `mutation($in: RegisterInput!) { register(input: $in) { accessToken userErrors { code field } } }`
	a.ok(regQ, map[string]any{"in": map[string]any{"email": "nope", "password": "short", "name": "", "phone": "12"}}, &reg)
	var fields []string
	for _, ue := range reg.Register.UserErrors {
		fields = append(fields, strings.Join(ue.Field, "."))
	}
	if strings.Join(fields, ",") != "input.email,input.name,input.phone,input.password" {
		t.Fatalf("register userErrors: %v", fields)
	}
	for i, phone := range []string{"+55 11 91234-5676", "+49 1512 3456787", "+5511912345676"} {
		a.ok(regQ, map[string]any{"in": map[string]any{"email": fmt.Sprintf("phone%d@example.com", i), "password": "a long enough passphrase", "name": "P", "phone": phone}}, &reg)
		if reg.Register.AccessToken == nil {
			t.Fatalf("register with phone %s: %+v", phone, reg.Register.UserErrors)
		}
	}
	// A real card number is still refused everywhere.
	r = h.gql(regQ, map[string]any{"in": map[string]any{"email": "card@example.com", "password": "a long enough passphrase", "name": "P", "phone": "4111 1111 1111 1111"}})
	if r.code() != bookstore.CodeBadUserInput {
		t.Fatalf("card as phone: %.300s", r.raw)
	}

	// Logout kills the access token at once, not when it expires.
	ann := a.register("ann@example.com", "Ann")
	me := `{ me { email } }`
	if r := a.as(ann.AccessToken, me, nil); len(r.Errors) > 0 {
		t.Fatalf("me: %+v", r.Errors)
	}
	a.mustAs("", `mutation($t: String!) { logout(refreshToken: $t) { ok } }`, &struct{}{}, "t", ann.RefreshToken)
	if r := a.as(ann.AccessToken, me, nil); code(r) != bookstore.CodeUnauthenticated {
		t.Fatalf("me after logout: %s %+v", r.Data, r.Errors)
	}

	// Promotion (a role change) ends the sessions that carry the old role; an admin whose
	// session ended cannot run admin mutations.
	bob := a.register("bob@example.com", "Bob")
	if _, err := svc.CreateAdmin(ctx, identity.RegisterInput{Email: "bob@example.com", Password: "a long enough passphrase", Name: "Bob"}); err != nil {
		t.Fatal(err)
	}
	if r := a.as(bob.AccessToken, me, nil); code(r) != bookstore.CodeUnauthenticated {
		t.Fatalf("pre-promotion token: %s %+v", r.Data, r.Errors)
	}
	var admin struct{ Login session }
	a.ok(`mutation { login(input: {email: "bob@example.com", password: "a long enough passphrase"}) { `+authFields+` } }`, nil, &admin)
	var book struct {
		Books struct {
			Edges []struct{ Node struct{ ID string } }
		}
	}
	a.ok(`{ books(first: 1) { edges { node { id } } } }`, nil, &book)
	setPrice := `mutation($id: ID!) { setBookPrice(bookId: $id, priceCents: 1234) { book { priceCents } } }`
	if r := a.as(admin.Login.AccessToken, setPrice, map[string]any{"id": book.Books.Edges[0].Node.ID}); len(r.Errors) > 0 {
		t.Fatalf("admin setBookPrice: %+v", r.Errors)
	}

	// Customer fields check the caller on every path: the admin sees a customer's name
	// and email through node(id:) but never their addresses (owner only).
	dave := a.register("dave@example.com", "Dave")
	a.mustAs(dave.AccessToken, `mutation { addAddress(input: {recipient: "Ann", line1: "1 Secret Lane", city: "Springfield", country: "US"}) { address { id } } }`, &struct{}{})
	carol := a.register("carol@example.com", "Carol")
	a.mustAs(carol.AccessToken, `mutation { addAddress(input: {recipient: "Carol", line1: "2 Hidden Road", city: "Springfield", country: "US"}) { address { id } } }`, &struct{}{})
	nodeQ := `query($id: ID!) { node(id: $id) { ... on Customer { email addresses { line1 } } } }`
	r2 := a.as(admin.Login.AccessToken, nodeQ, map[string]any{"id": carol.Customer.ID})
	if code(r2) != bookstore.CodeNotFound || strings.Contains(string(r2.Data), "Hidden") {
		t.Fatalf("admin reading addresses: %s %+v", r2.Data, r2.Errors)
	}
	if r := a.as(admin.Login.AccessToken, `query($id: ID!) { node(id: $id) { ... on Customer { email name } } }`, map[string]any{"id": carol.Customer.ID}); len(r.Errors) > 0 || !strings.Contains(string(r.Data), "carol@example.com") {
		t.Fatalf("admin reading a customer: %s %+v", r.Data, r.Errors)
	}
	if r := a.as(carol.AccessToken, nodeQ, map[string]any{"id": carol.Customer.ID}); len(r.Errors) > 0 || !strings.Contains(string(r.Data), "Hidden") {
		t.Fatalf("owner reading addresses: %s %+v", r.Data, r.Errors)
	}
	var fresh struct {
		Login struct {
			Customer struct {
				Email     string
				Addresses []struct{ Line1 string }
			}
		}
	}
	a.ok(`mutation { login(input: {email: "carol@example.com", password: "a long enough passphrase"}) { customer { email addresses { line1 } } } }`, nil, &fresh)
	if fresh.Login.Customer.Email != "carol@example.com" || len(fresh.Login.Customer.Addresses) != 1 {
		t.Fatalf("the customer of a login payload: %+v", fresh.Login.Customer)
	}

	// deleteAddress's NOT_FOUND names its field; addAddress refuses reserved countries.
	var del struct {
		DeleteAddress struct {
			UserErrors []struct {
				Code  string
				Field []string
			}
		}
	}
	a.mustAs(dave.AccessToken, `mutation { deleteAddress(id: "QWRkcmVzczowMDAwMDAwMC0wMDAwLTAwMDAtMDAwMC0wMDAwMDAwMDAwMDE") { userErrors { code field } } }`, &del)
	if ue := del.DeleteAddress.UserErrors; len(ue) != 1 || ue[0].Code != bookstore.CodeNotFound || strings.Join(ue[0].Field, ".") != "id" {
		t.Fatalf("deleteAddress of a missing address: %+v", ue)
	}
	for _, c := range []string{"UK", "EU", "XX", "ZZ"} {
		var add struct {
			AddAddress struct {
				UserErrors []struct {
					Code  string
					Field []string
				}
			}
		}
		a.mustAs(dave.AccessToken, `mutation($c: String!) { addAddress(input: {recipient: "A", line1: "L", city: "C", country: $c}) { userErrors { code field } } }`, &add, "c", c)
		if ue := add.AddAddress.UserErrors; len(ue) != 1 || strings.Join(ue[0].Field, ".") != "input.country" {
			t.Fatalf("country %s: %+v", c, ue)
		}
	}

	// A cursor holding a NUL is bad input, not INTERNAL.
	nul := base64.RawURLEncoding.EncodeToString([]byte(`{"s":"TITLE","k":"a\u0000b","i":"` + uuid.NewString() + `"}`))
	r = h.gql(`query($c: String!) { books(sort: TITLE, after: $c) { edges { cursor } } }`, map[string]any{"c": nul})
	fieldErrors(t, r, bookstore.CodeBadUserInput)
	// Nor one whose key is not UTF-8 (JSON decoding would quietly replace the byte).
	notUTF8 := base64.RawURLEncoding.EncodeToString([]byte(`{"s":"TITLE","k":"a` + "\xff" + `b","i":"` + uuid.NewString() + `"}`))
	r = h.gql(`query($c: String!) { books(sort: TITLE, after: $c) { edges { cursor } } }`, map[string]any{"c": notUTF8})
	fieldErrors(t, r, bookstore.CodeBadUserInput)

	// Two operations and no operationName: a message that says what to do.
	r = h.gql(`query A { __typename } query B { __typename }`, nil)
	if r.status != http.StatusBadRequest || len(r.errors) != 1 || strings.Contains(r.errors[0].Message, "operation  not found") {
		t.Fatalf("no operationName: %d %.300s", r.status, r.raw)
	}

	// Request ids: a safe one comes back, a forged or huge one is replaced.
	for id, kept := range map[string]bool{"req-123_abc.DEF:9": true, strings.Repeat("x", 65): false, "<script>alert(1)</script>": false, "evil id": false} {
		hdr := http.Header{"X-Request-Id": {id}}
		got := h.send(hreq{method: http.MethodGet, path: "/healthz", header: hdr}).header.Get("X-Request-Id")
		if (got == id) != kept || got == "" || len(got) > 64 {
			t.Fatalf("X-Request-Id %q answered %q", id, got)
		}
	}
	if got := h.send(hreq{method: http.MethodGet, path: "/healthz"}).header.Get("X-Request-Id"); got == "" {
		t.Fatal("no X-Request-Id generated")
	}

	// Answers with credentials or tokens are never cached; anonymous catalog answers may be.
	if cc := h.gql(me, nil, func(q *hreq) { q.authorization = "Bearer " + carol.AccessToken }).header.Get("Cache-Control"); cc != "private, no-store" {
		t.Fatalf("authenticated answer Cache-Control %q", cc)
	}
	if cc := h.gql(`mutation { logout(refreshToken: "x") { ok } }`, nil).header.Get("Cache-Control"); cc != "private, no-store" {
		t.Fatalf("mutation answer Cache-Control %q", cc)
	}
	if cc := h.gql(`{ books(first: 1) { totalCount } }`, nil).header.Get("Cache-Control"); cc != "" {
		t.Fatalf("anonymous catalog answer Cache-Control %q", cc)
	}

	// A CORS wildcard must be a whole leftmost label.
	for o, ok := range map[string]bool{"https://*example.com": false, "https://a*.example.com": false, "*://example.com": false, "https://*.example.com": true} {
		if _, err := server.ParseOrigins(o); (err == nil) != ok {
			t.Fatalf("ParseOrigins(%q): %v", o, err)
		}
	}

	h.healthy(5)
	h.noLeak(base)
}

// TestLoginFloodLeavesBrowsingAlone: a flood of logins with unknown emails (each a full
// argon2id verification) runs at most the hasher's bound at once and turns the excess
// away as RATE_LIMITED at once, while catalog pages keep answering. It asserts the
// bounded concurrency and queueing, not timings; run with -v to see browse latencies.
func TestLoginFloodLeavesBrowsingAlone(t *testing.T) {
	// Two lanes as in production, less memory and one pass: the race detector slows
	// argon2 tenfold, and the bound, not the cost, is under test.
	p := auth.PasswordParams{Memory: 16 * 1024, Iterations: 1, Parallelism: 2, SaltLength: 16, KeyLength: 32}
	hasher, err := auth.NewHasherWith(p, auth.HashLimits{Queue: 2, Wait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	a := newAPIWith(t, 20, func(c *server.Config) {
		c.ResponseTTL = -1
		c.Identity, c.Tokens = newSecurityWith(t, c.DB, func(ic *identity.Config) {
			// Only the hasher's bound may turn logins away here, not the throttles.
			lenient, _ := auth.NewLocalLimiter(auth.PerMinute(1_000_000), auth.LocalOptions{})
			ic.Hasher = hasher
			ic.LoginPerIP, ic.LoginPerAccount, ic.LoginPerAccountIP, ic.HashBudget = lenient, lenient, lenient, lenient
			ic.HashPerIP, ic.HashPerAccount = lenient, lenient
		})
	})
	h := newHClient(t, a.url)
	browse := func() time.Duration {
		r := h.gql(`{ books(first: 20) { edges { node { title authors { name } } } } }`, nil)
		if r.status != http.StatusOK || len(r.errors) > 0 {
			t.Errorf("browse during the flood: %d %.200s", r.status, r.raw)
		}
		return r.took
	}
	quiet := make([]time.Duration, 20)
	for i := range quiet {
		quiet[i] = browse()
	}
	var wg sync.WaitGroup
	var limited, unauth atomic.Int64
	stop := make(chan struct{})
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := newHClient(t, a.url)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-time.After(25 * time.Millisecond): // up to ~300 logins a second in all
				}
				// Each worker its own address, so the per-IP throttle is not what stops them.
				r := c.gql(`mutation($in: LoginInput!) { login(input: $in) { userErrors { code } } }`,
					map[string]any{"in": map[string]any{"email": fmt.Sprintf("flood%d-%d@example.com", w, i), "password": "not the password at all"}})
				switch {
				case strings.Contains(string(r.raw), `"RATE_LIMITED"`):
					limited.Add(1)
				case strings.Contains(string(r.raw), `"UNAUTHENTICATED"`):
					unauth.Add(1)
				default:
					t.Errorf("login during the flood: %d %.200s", r.status, r.raw)
				}
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	flood := make([]time.Duration, 40)
	for i := range flood {
		flood[i] = browse()
	}
	close(stop)
	wg.Wait()
	st := hasher.Stats()
	if bound := int64(auth.DefaultHashConcurrency()); st.PeakInFlight > bound || st.PeakInFlight < 1 {
		t.Fatalf("peak %d hashes at once, bound %d", st.PeakInFlight, bound)
	}
	if limited.Load() == 0 || unauth.Load() == 0 || st.Busy != limited.Load() || st.InFlight != 0 || st.Waiting != 0 {
		t.Fatalf("%d RATE_LIMITED, %d UNAUTHENTICATED logins: the queue should have turned some away and let some through", limited.Load(), unauth.Load())
	}
	slices.Sort(quiet)
	slices.Sort(flood)
	t.Logf("browse p50/max quiet %v/%v, during flood %v/%v; logins: %d verified, %d turned away; hasher %+v",
		quiet[len(quiet)/2], quiet[len(quiet)-1], flood[len(flood)/2], flood[len(flood)-1], unauth.Load(), limited.Load(), st)
}
