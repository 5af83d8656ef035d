package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shopfront/bookstore/graph"
	"github.com/shopfront/bookstore/resolvers"
	"github.com/shopfront/bookstore/server"
)

// TestGraphQLOverHTTPAudit runs the official GraphQL-over-HTTP audit (graphql-http's
// auditServer, tools/graphql-http-audit) against the real handler, database and all, and
// fails on any error, warning or notice. Under CI a missing Node.js or node_modules fails
// the test (the test command installs them); elsewhere it skips.
func TestGraphQLOverHTTPAudit(t *testing.T) {
	dir, err := filepath.Abs(filepath.Join("..", "tools", "graphql-http-audit"))
	if err != nil {
		t.Fatal(err)
	}
	missing := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("CI") != "" {
			t.Fatalf(format, args...)
		}
		t.Skipf(format, args...)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node is not installed (scripts/ensure-deps.sh node installs it)")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "graphql-http", "package.json")); err != nil {
		missing("graphql-http is not installed: run `npm ci` in %s", dir)
	}

	a := newAPI(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(dir, "audit.mjs"), a.url+"/graphql")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("the GraphQL-over-HTTP audit failed (%v); see the non-ok lines above", err)
	}
	if !strings.Contains(string(out), " 0 warn, 0 error") {
		t.Fatal("the audit printed no clean summary line")
	}
}

// result is one HTTP exchange with the endpoint.
type result struct {
	status int
	header http.Header
	body   map[string]json.RawMessage
	raw    string
}

func (r result) hasData() bool { _, ok := r.body["data"]; return ok }

// errorCode is the extensions.code of the first error ("" when none).
func (r result) errorCode() string {
	var errs []struct {
		Extensions struct {
			Code string `json:"code"`
		} `json:"extensions"`
	}
	_ = json.Unmarshal(r.body["errors"], &errs)
	if len(errs) == 0 {
		return ""
	}
	return errs[0].Extensions.Code
}

type exchange struct {
	method      string
	path        string // with query string, for GET
	contentType string
	accept      string
	body        io.Reader
}

func roundTrip(t *testing.T, base string, x exchange) result {
	t.Helper()
	if x.method == "" {
		x.method = http.MethodPost
	}
	req, err := http.NewRequest(x.method, base+x.path, x.body)
	if err != nil {
		t.Fatal(err)
	}
	if x.contentType != "" {
		req.Header.Set("Content-Type", x.contentType)
	}
	if x.accept != "" {
		req.Header.Set("Accept", x.accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	res := result{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &res.body); err != nil {
			t.Fatalf("%s %s: response is not a JSON object (%d): %s", x.method, x.path, resp.StatusCode, raw)
		}
	}
	return res
}

const (
	graphqlResponse = "application/graphql-response+json"
	appJSON         = "application/json"
)

func jsonBody(v any) io.Reader {
	b, _ := json.Marshal(v)
	return bytes.NewReader(b)
}

func apq(hash string) map[string]any {
	return map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": hash}}
}

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func getPath(params map[string]string) string {
	v := url.Values{}
	for k, s := range params {
		v.Set(k, s)
	}
	return "?" + v.Encode()
}

// onlyReader hides a reader's length, so the client sends the body chunked.
type onlyReader struct{ io.Reader }

// newEndpoint serves NewGraphQL over the generated schema without a database: the rows
// below only need __typename, validation and the transport.
func newEndpoint(t *testing.T, opts server.GraphQLOptions) string {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	es := graph.NewExecutableSchema(graph.Config{Resolvers: &resolvers.Resolver{Log: log}})
	opts.ErrorPresenter = resolvers.ErrorPresenter(log)
	opts.RecoverFunc = resolvers.RecoverFunc(log)
	srv := httptest.NewServer(server.NewGraphQL(es, opts))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestHTTPTransportRules pins the status codes, media types and body shapes of the
// GraphQL-over-HTTP transport.
func TestHTTPTransportRules(t *testing.T) {
	base := newEndpoint(t, server.GraphQLOptions{Introspection: true, ComplexityLimit: 5, MaxBodyBytes: 4096})
	hasMutations := graph.NewExecutableSchema(graph.Config{}).Schema().Mutation != nil
	big := `{"query":"{ __typename }","variables":{"pad":"` + strings.Repeat("x", 5000) + `"}}`
	type want struct {
		status int
		media  string // "" for don't care
		data   bool   // whether the body has a "data" key
		code   string // extensions.code of the first error, "" for none
		allow  string // the Allow header, when set
	}
	getMutationStatus, getMutationCode, getMutationAllow := http.StatusMethodNotAllowed, server.CodeMethodNotAllowed, "POST"
	if !hasMutations {
		// The schema has no mutations (yet): a mutation does not validate.
		getMutationStatus, getMutationCode, getMutationAllow = http.StatusBadRequest, "GRAPHQL_VALIDATION_FAILED", ""
	}
	valid := map[string]any{"query": "{ __typename }"}
	cases := []struct {
		name string
		x    exchange
		want want
	}{
		{"valid query, graphql-response+json",
			exchange{contentType: appJSON, accept: graphqlResponse, body: jsonBody(valid)},
			want{status: 200, media: graphqlResponse, data: true}},
		{"valid query, application/json",
			exchange{contentType: appJSON, accept: appJSON, body: jsonBody(valid)},
			want{status: 200, media: appJSON, data: true}},
		{"valid query, both accepted: graphql-response+json preferred",
			exchange{contentType: appJSON, accept: graphqlResponse + ", " + appJSON + ";q=0.9", body: jsonBody(valid)},
			want{status: 200, media: graphqlResponse, data: true}},
		{"valid query, no Accept: application/json",
			exchange{contentType: appJSON, body: jsonBody(valid)},
			want{status: 200, media: appJSON, data: true}},
		{"valid query, */*: application/json",
			exchange{contentType: appJSON, accept: "*/*", body: jsonBody(valid)},
			want{status: 200, media: appJSON, data: true}},
		{"valid query, content type with charset",
			exchange{contentType: appJSON + "; charset=UTF-8", accept: graphqlResponse, body: jsonBody(valid)},
			want{status: 200, media: graphqlResponse, data: true}},
		{"GET query",
			exchange{method: http.MethodGet, path: getPath(map[string]string{"query": "query Q($n: String!) { __type(name: $n) { name } }", "variables": `{"n":"Book"}`}), accept: graphqlResponse},
			want{status: 200, media: graphqlResponse, data: true}},
		{"unsupported Accept",
			exchange{contentType: appJSON, accept: "text/html", body: jsonBody(valid)},
			want{status: 406, media: appJSON, code: server.CodeNotAcceptable}},
		{"Accept refusing both JSON types",
			exchange{contentType: appJSON, accept: graphqlResponse + ";q=0, " + appJSON + ";q=0", body: jsonBody(valid)},
			want{status: 406, code: server.CodeNotAcceptable}},

		{"parse error, graphql-response+json",
			exchange{contentType: appJSON, accept: graphqlResponse, body: jsonBody(map[string]any{"query": "{"})},
			want{status: 400, media: graphqlResponse, code: "GRAPHQL_PARSE_FAILED"}},
		{"parse error, application/json",
			exchange{contentType: appJSON, accept: appJSON, body: jsonBody(map[string]any{"query": "{"})},
			want{status: 200, media: appJSON, code: "GRAPHQL_PARSE_FAILED"}},
		{"validation error, graphql-response+json",
			exchange{contentType: appJSON, accept: graphqlResponse, body: jsonBody(map[string]any{"query": "{ noSuchField }"})},
			want{status: 400, media: graphqlResponse, code: "GRAPHQL_VALIDATION_FAILED"}},
		{"validation error, application/json",
			exchange{contentType: appJSON, accept: appJSON, body: jsonBody(map[string]any{"query": "{ noSuchField }"})},
			want{status: 200, media: appJSON, code: "GRAPHQL_VALIDATION_FAILED"}},
		{"variable coercion error, graphql-response+json",
			exchange{contentType: appJSON, accept: graphqlResponse, body: jsonBody(map[string]any{"query": "query($id: ID!) { __typename }", "variables": map[string]any{"id": nil}})},
			want{status: 400, media: graphqlResponse, code: "GRAPHQL_VALIDATION_FAILED"}},
		{"variable coercion error, application/json",
			exchange{contentType: appJSON, accept: appJSON, body: jsonBody(map[string]any{"query": "query($n: Int!) { __typename }", "variables": map[string]any{"n": "x"}})},
			want{status: 200, media: appJSON, code: "GRAPHQL_VALIDATION_FAILED"}},
		{"unknown operation name",
			exchange{contentType: appJSON, accept: graphqlResponse, body: jsonBody(map[string]any{"query": "query A { __typename }", "operationName": "B"})},
			want{status: 400, media: graphqlResponse, code: "GRAPHQL_VALIDATION_FAILED"}},
		{"complexity over the limit",
			exchange{contentType: appJSON, accept: graphqlResponse, body: jsonBody(map[string]any{"query": "{ a: __typename b: __typename c: __typename d: __typename e: __typename f: __typename }"})},
			want{status: 400, media: graphqlResponse, code: "COMPLEXITY_LIMIT_EXCEEDED"}},

		{"mutation over GET",
			exchange{method: http.MethodGet, path: getPath(map[string]string{"query": "mutation { __typename }"}), accept: graphqlResponse},
			want{status: getMutationStatus, media: graphqlResponse, code: getMutationCode, allow: getMutationAllow}},
		{"PUT",
			exchange{method: http.MethodPut, contentType: appJSON, body: jsonBody(valid)},
			want{status: 405, code: server.CodeMethodNotAllowed, allow: "GET, POST, OPTIONS"}},
		{"text/plain body",
			exchange{contentType: "text/plain", accept: graphqlResponse, body: jsonBody(valid)},
			want{status: 415, media: graphqlResponse, code: server.CodeUnsupportedMediaType}},
		{"no content type",
			exchange{accept: graphqlResponse, body: jsonBody(valid)},
			want{status: 415, code: server.CodeUnsupportedMediaType}},
		{"utf-16 body",
			exchange{contentType: appJSON + "; charset=utf-16", body: jsonBody(valid)},
			want{status: 415, code: server.CodeUnsupportedMediaType}},
		{"body over the limit (Content-Length)",
			exchange{contentType: appJSON, accept: graphqlResponse, body: strings.NewReader(big)},
			want{status: 413, media: graphqlResponse, code: server.CodePayloadTooLarge}},
		{"body over the limit (chunked)",
			exchange{contentType: appJSON, accept: graphqlResponse, body: onlyReader{strings.NewReader(big)}},
			want{status: 413, media: graphqlResponse, code: server.CodePayloadTooLarge}},
		{"malformed JSON, application/json",
			exchange{contentType: appJSON, accept: appJSON, body: strings.NewReader(`{ "query": "{ __typename }"`)},
			want{status: 400, media: appJSON, code: server.CodeBadRequest}},
		{"malformed JSON, graphql-response+json",
			exchange{contentType: appJSON, accept: graphqlResponse, body: strings.NewReader(`{ "not a JSON`)},
			want{status: 400, media: graphqlResponse, code: server.CodeBadRequest}},
		{"invalid UTF-8",
			exchange{contentType: appJSON, accept: graphqlResponse, body: strings.NewReader("{\"query\":\"{ __typename } # \xff\xfe\"}")},
			want{status: 400, media: graphqlResponse, code: server.CodeBadRequest}},
		{"empty body",
			exchange{contentType: appJSON, accept: graphqlResponse, body: strings.NewReader("")},
			want{status: 400, code: server.CodeBadRequest}},
		{"a batch (array) is not supported",
			exchange{contentType: appJSON, accept: graphqlResponse, body: strings.NewReader(`[{"query":"{ __typename }"}]`)},
			want{status: 400, code: server.CodeBadRequest}},
		{"two JSON values",
			exchange{contentType: appJSON, accept: graphqlResponse, body: strings.NewReader(`{"query":"{ __typename }"} {}`)},
			want{status: 400, code: server.CodeBadRequest}},
		{"missing query",
			exchange{contentType: appJSON, accept: graphqlResponse, body: jsonBody(map[string]any{"qeury": "{ __typename }"})},
			want{status: 400, code: server.CodeBadRequest}},
		{"query not a string",
			exchange{contentType: appJSON, body: jsonBody(map[string]any{"query": 0})},
			want{status: 400, code: server.CodeBadRequest}},
		{"variables not an object",
			exchange{contentType: appJSON, body: jsonBody(map[string]any{"query": "{ __typename }", "variables": "x"})},
			want{status: 400, code: server.CodeBadRequest}},
		{"GET variables not JSON",
			exchange{method: http.MethodGet, path: getPath(map[string]string{"query": "{ __typename }", "variables": "{"})},
			want{status: 400, code: server.CodeBadRequest}},

		{"APQ hash miss, graphql-response+json",
			exchange{contentType: appJSON, accept: graphqlResponse, body: jsonBody(map[string]any{"extensions": apq(sha("{ miss: __typename }"))})},
			want{status: 404, media: graphqlResponse, code: server.CodePersistedQueryNotFound}},
		{"APQ hash miss, application/json",
			exchange{contentType: appJSON, accept: appJSON, body: jsonBody(map[string]any{"extensions": apq(sha("{ miss: __typename }"))})},
			want{status: 200, media: appJSON, code: server.CodePersistedQueryNotFound}},
		{"APQ hash miss over GET",
			exchange{method: http.MethodGet, path: getPath(map[string]string{"extensions": mustJSON(apq(sha("{ miss: __typename }")))}), accept: graphqlResponse},
			want{status: 404, media: graphqlResponse, code: server.CodePersistedQueryNotFound}},
		{"APQ hash not matching the query",
			exchange{contentType: appJSON, accept: graphqlResponse, body: jsonBody(map[string]any{"query": "{ __typename }", "extensions": apq(sha("something else"))})},
			want{status: 400, media: graphqlResponse, code: server.CodeBadRequest}},
		{"APQ version 2",
			exchange{contentType: appJSON, accept: graphqlResponse, body: jsonBody(map[string]any{"query": "{ __typename }",
				"extensions": map[string]any{"persistedQuery": map[string]any{"version": 2, "sha256Hash": sha("{ __typename }")}}})},
			want{status: 400, media: graphqlResponse, code: server.CodeBadRequest}},
		{"APQ hash not 64 hex digits",
			exchange{contentType: appJSON, accept: graphqlResponse, body: jsonBody(map[string]any{"extensions": apq("not-a-hash")})},
			want{status: 400, media: graphqlResponse, code: server.CodeBadRequest}},
		{"APQ hash too short",
			exchange{contentType: appJSON, accept: graphqlResponse, body: jsonBody(map[string]any{"extensions": apq(sha("{ __typename }")[:40])})},
			want{status: 400, media: graphqlResponse, code: server.CodeBadRequest}},
		{"APQ extension malformed",
			exchange{contentType: appJSON, accept: graphqlResponse, body: jsonBody(map[string]any{"query": "{ __typename }",
				"extensions": map[string]any{"persistedQuery": "not an object"}})},
			want{status: 400, media: graphqlResponse, code: server.CodeBadRequest}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := roundTrip(t, base, c.x)
			if r.status != c.want.status {
				t.Fatalf("status %d, want %d: %s", r.status, c.want.status, r.raw)
			}
			ct := r.header.Get("Content-Type")
			if c.want.media != "" && !strings.HasPrefix(ct, c.want.media) {
				t.Errorf("Content-Type %q, want %s", ct, c.want.media)
			}
			if r.hasData() != c.want.data {
				t.Errorf("data key present: %v, want %v: %s", r.hasData(), c.want.data, r.raw)
			}
			if got := r.errorCode(); got != c.want.code {
				t.Errorf("error code %q, want %q: %s", got, c.want.code, r.raw)
			}
			if c.want.data && len(r.body["errors"]) > 0 {
				t.Errorf("unexpected errors: %s", r.raw)
			}
			if !c.want.data && r.body["errors"] == nil {
				t.Errorf("a failed request without errors: %s", r.raw)
			}
			if c.want.allow != "" && r.header.Get("Allow") != c.want.allow {
				t.Errorf("Allow %q, want %q", r.header.Get("Allow"), c.want.allow)
			}
			if strings.Contains(r.raw, "qeury") || strings.Contains(r.raw, "not a JSON") {
				t.Errorf("the error echoes the request body: %s", r.raw)
			}
		})
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// TestAutomaticPersistedQueries: a client registers a query by sending its text and hash
// once, then sends only the hash, by POST or by GET.
func TestAutomaticPersistedQueries(t *testing.T) {
	base := newEndpoint(t, server.GraphQLOptions{})
	q := "query Registered { __typename }"
	h := sha(q)
	byHash := exchange{contentType: appJSON, accept: graphqlResponse, body: jsonBody(map[string]any{"extensions": apq(h)})}
	if r := roundTrip(t, base, byHash); r.status != 404 || r.errorCode() != server.CodePersistedQueryNotFound {
		t.Fatalf("before registration: %d %s", r.status, r.raw)
	}
	reg := roundTrip(t, base, exchange{contentType: appJSON, accept: graphqlResponse,
		body: jsonBody(map[string]any{"query": q, "extensions": apq(h)})})
	if reg.status != 200 || !reg.hasData() {
		t.Fatalf("registration: %d %s", reg.status, reg.raw)
	}
	byHash.body = jsonBody(map[string]any{"extensions": apq(h)})
	if r := roundTrip(t, base, byHash); r.status != 200 || string(r.body["data"]) != `{"__typename":"Query"}` {
		t.Fatalf("hit by POST: %d %s", r.status, r.raw)
	}
	get := exchange{method: http.MethodGet, accept: graphqlResponse, path: getPath(map[string]string{"extensions": mustJSON(apq(h))})}
	if r := roundTrip(t, base, get); r.status != 200 || string(r.body["data"]) != `{"__typename":"Query"}` {
		t.Fatalf("hit by GET: %d %s", r.status, r.raw)
	}
}

// TestPersistedOnly: in production only the manifest's operations run.
func TestPersistedOnly(t *testing.T) {
	known := "query Known { __typename }"
	base := newEndpoint(t, server.GraphQLOptions{
		PersistedOnly:    true,
		PersistedQueries: map[string]string{sha(known): known},
	})
	post := func(body map[string]any, accept string) result {
		return roundTrip(t, base, exchange{contentType: appJSON, accept: accept, body: jsonBody(body)})
	}
	for _, c := range []struct {
		name   string
		r      func() result
		status int
		code   string
	}{
		{"manifest hash", func() result { return post(map[string]any{"extensions": apq(sha(known))}, graphqlResponse) }, 200, ""},
		{"manifest hash over GET", func() result {
			return roundTrip(t, base, exchange{method: http.MethodGet, accept: graphqlResponse,
				path: getPath(map[string]string{"extensions": mustJSON(apq(sha(known)))})})
		}, 200, ""},
		{"manifest text", func() result { return post(map[string]any{"query": known}, graphqlResponse) }, 200, ""},
		{"other text", func() result { return post(map[string]any{"query": "{ __typename }"}, graphqlResponse) }, 403, server.CodePersistedQueryRequired},
		{"other text, application/json", func() result { return post(map[string]any{"query": "{ __typename }"}, appJSON) }, 200, server.CodePersistedQueryRequired},
		{"registration refused", func() result {
			q := "{ registered: __typename }"
			return post(map[string]any{"query": q, "extensions": apq(sha(q))}, graphqlResponse)
		}, 403, server.CodePersistedQueryRequired},
		{"refused registration did not register", func() result {
			return post(map[string]any{"extensions": apq(sha("{ registered: __typename }"))}, graphqlResponse)
		}, 404, server.CodePersistedQueryNotFound},
		{"unknown hash", func() result { return post(map[string]any{"extensions": apq(sha("nope"))}, graphqlResponse) }, 404, server.CodePersistedQueryNotFound},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := c.r()
			if r.status != c.status || r.errorCode() != c.code {
				t.Fatalf("%d %q, want %d %q: %s", r.status, r.errorCode(), c.status, c.code, r.raw)
			}
			if (c.code == "") != r.hasData() {
				t.Fatalf("data present: %v: %s", r.hasData(), r.raw)
			}
		})
	}
}

// TestGraphQLEndpointWithDatabase: through the whole router with the response cache on, a
// catalog query answers under both media types and over GET, and the second identical
// request is served from the cache (no SQL), so the transport keeps the cache working.
func TestGraphQLEndpointWithDatabase(t *testing.T) {
	a := newAPIWith(t, 5, func(*server.Config) {}) // default ResponseTTL: cache on
	q := `query Page { books(first: 3) { totalCount edges { node { title } } } }`
	var first string
	for i, accept := range []string{graphqlResponse, appJSON} {
		before := a.queries.n.Load()
		r := roundTrip(t, a.url, exchange{path: "/graphql", contentType: appJSON, accept: accept, body: jsonBody(map[string]any{"query": q})})
		if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), accept) || r.body["errors"] != nil {
			t.Fatalf("%s: %d %s", accept, r.status, r.raw)
		}
		var data struct {
			Books struct{ TotalCount int }
		}
		if err := json.Unmarshal(r.body["data"], &data); err != nil || data.Books.TotalCount != 5 {
			t.Fatalf("%s: data %s (%v)", accept, r.body["data"], err)
		}
		if i == 0 {
			first = string(r.body["data"])
			continue
		}
		if string(r.body["data"]) != first {
			t.Fatalf("cached answer %s differs from %s", r.body["data"], first)
		}
		if n := a.queries.n.Load() - before; n != 0 {
			t.Fatalf("the repeated query ran %d SQL statements; the response cache did not answer it", n)
		}
	}
	r := roundTrip(t, a.url, exchange{method: http.MethodGet, path: "/graphql" + getPath(map[string]string{"query": q}), accept: graphqlResponse})
	if r.status != 200 || string(r.body["data"]) != first {
		t.Fatalf("GET: %d %s", r.status, r.raw)
	}
}

// TestGraphiQLAssets: the page and its assets come from the binary with a strict CSP,
// nosniff, and year-long caching of the content-addressed assets.
func TestGraphiQLAssets(t *testing.T) {
	srv := httptest.NewServer(server.GraphiQL("/graphql"))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	csp := resp.Header.Get("Content-Security-Policy")
	for _, d := range []string{"default-src 'none'", "script-src 'self';", "connect-src 'self'"} {
		if !strings.Contains(csp, d) {
			t.Errorf("CSP %q lacks %q", csp, d)
		}
	}
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Error("page without nosniff")
	}
	if !strings.Contains(string(page), `data-endpoint="/graphql"`) {
		t.Errorf("the page does not point GraphiQL at /graphql: %s", page)
	}
	if strings.Contains(string(page), "<script>") || strings.Contains(string(page), "<script >") {
		t.Error("the page has an inline script")
	}
	srcs := 0
	for _, part := range strings.Split(string(page), `"`) {
		if !strings.HasPrefix(part, "/graphiql/") {
			continue
		}
		srcs++
		for _, gz := range []bool{false, true} {
			req, _ := http.NewRequest(http.MethodGet, srv.URL+part, nil)
			if gz {
				req.Header.Set("Accept-Encoding", "gzip") // and so the transport does not decompress
			}
			resp, err := http.DefaultTransport.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || len(body) == 0 {
				t.Fatalf("%s = %d", part, resp.StatusCode)
			}
			if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "max-age=31536000") || !strings.Contains(cc, "immutable") {
				t.Errorf("%s: Cache-Control %q", part, cc)
			}
			if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Content-Security-Policy") == "" {
				t.Errorf("%s: security headers missing", part)
			}
			if gz != (resp.Header.Get("Content-Encoding") == "gzip") {
				t.Errorf("%s: Content-Encoding %q with gzip accepted: %v", part, resp.Header.Get("Content-Encoding"), gz)
			}
			// Revalidation by ETag.
			req2, _ := http.NewRequest(http.MethodGet, srv.URL+part, nil)
			req2.Header.Set("If-None-Match", resp.Header.Get("ETag"))
			if gz {
				req2.Header.Set("Accept-Encoding", "gzip")
			}
			resp2, err := http.DefaultTransport.RoundTrip(req2)
			if err != nil {
				t.Fatal(err)
			}
			resp2.Body.Close()
			if resp2.StatusCode != http.StatusNotModified {
				t.Errorf("%s with If-None-Match = %d", part, resp2.StatusCode)
			}
		}
	}
	if srcs < 5 {
		t.Fatalf("the page links %d assets, want the 4 scripts and 2 stylesheets", srcs)
	}
	resp, err = http.Get(srv.URL + "/graphiql/nope.js")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown asset = %d", resp.StatusCode)
	}
	if _, err := os.Stat("graphiql/LICENSES.txt"); errors.Is(err, os.ErrNotExist) {
		t.Fatal("the vendored assets' licences are missing")
	}
}
