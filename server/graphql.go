package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/shopfront/bookstore"
)

// DefaultMaxBodyBytes caps a POST body when GraphQLOptions.MaxBodyBytes is 0.
const DefaultMaxBodyBytes = 1 << 20

// Error codes (extensions.code) of the requests refused by the HTTP layer itself, before
// any GraphQL is parsed. Like the domain codes they are part of the API contract.
const (
	CodeBadRequest             = "BAD_REQUEST"               // malformed JSON, invalid UTF-8, invalid parameters
	CodePayloadTooLarge        = "PAYLOAD_TOO_LARGE"         // body over MaxBodyBytes
	CodeUnsupportedMediaType   = "UNSUPPORTED_MEDIA_TYPE"    // POST body not application/json (utf-8)
	CodeNotAcceptable          = "NOT_ACCEPTABLE"            // Accept allows no JSON response type
	CodeMethodNotAllowed       = "METHOD_NOT_ALLOWED"        // not GET/POST, or a mutation over GET
	CodePersistedQueryNotFound = "PERSISTED_QUERY_NOT_FOUND" // APQ hash unknown: send the query text with it
	CodePersistedQueryRequired = "PERSISTED_QUERY_REQUIRED"  // PersistedOnly: the operation is not in the manifest
)

// GraphQLOptions configures NewGraphQL.
type GraphQLOptions struct {
	// Introspection allows __schema and __type (GraphiQL needs it; turn off in production).
	Introspection bool
	// ComplexityLimit refuses operations costing more (0: no limit).
	ComplexityLimit int
	// ErrorPresenter and RecoverFunc are handed to gqlgen's executor (nil: gqlgen's).
	ErrorPresenter graphql.ErrorPresenterFunc
	RecoverFunc    graphql.RecoverFunc
	// Extensions are added after the built-in ones (persisted queries, introspection,
	// complexity), e.g. the ResponseCache.
	Extensions []graphql.HandlerExtension

	// MaxBodyBytes caps a POST body; larger ones get 413. 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64

	// PersistedQueries is a manifest of known operations, sha256 hex of the text -> text,
	// typically extracted from the clients at build time. They are always served by hash
	// (automatic persisted queries in the Apollo protocol), and are never evicted.
	PersistedQueries map[string]string
	// PersistedOnly (production) executes only operations of the PersistedQueries
	// manifest, by hash or by their exact text; everything else is refused with
	// PERSISTED_QUERY_REQUIRED, and clients cannot register new hashes.
	PersistedOnly bool
	// APQCacheSize is how many automatically persisted queries (registered by clients
	// sending text and hash) are kept; 0 means 1000. Unused with PersistedOnly.
	APQCacheSize int
	// QueryCacheSize is how many parsed and validated documents are kept; 0 means 1000.
	QueryCacheSize int

	// Transports are tried, in order, BEFORE the GraphQL-over-HTTP transport, which
	// answers every other (non-WebSocket) request of the endpoint, with 405/406/415 when
	// it cannot serve it. This is the place for streaming transports:
	//
	//	Transports: []graphql.Transport{
	//		transport.Websocket{ // subscriptions over graphql-transport-ws
	//			KeepAlivePingInterval: 10 * time.Second,
	//			InitFunc:              authenticate, // auth at connection_init
	//		},
	//		transport.SSE{}, // POST with Accept: text/event-stream
	//	},
	//
	// A WebSocket transport can also be added later with AddTransport on the returned
	// server, since the HTTP transport declines WebSocket upgrades; any other transport
	// must come through this field, or the HTTP transport would answer its requests.
	Transports []graphql.Transport
}

// NewGraphQL returns the GraphQL endpoint: gqlgen's server (executor, extensions, error
// presenter, recover func) behind a transport that follows the GraphQL-over-HTTP spec
// (https://graphql.github.io/graphql-over-http/) and passes its audit (graphql-http's
// auditServer) with no error and no warning; see tools/graphql-http-audit.
//
// Why a transport of our own rather than gqlgen's transport.POST and transport.GET:
// the status code and body shape of a failed request depend on decisions those make
// inside Do (they answer request errors with 422 under application/json, always write a
// "data" key, echo the raw body in decode errors, and cannot check a GET's operation
// before validation extensions run). Fixing that from outside would mean buffering and
// rewriting their responses, re-parsing JSON on every error and guessing which errors
// happened before execution. A graphql.Transport sees the request and the executor
// directly: it knows for certain that an error came from CreateOperationContext (a
// request error: parse, validation, variable coercion, persisted query, complexity) and
// not from execution, so it can pick the status and leave out "data", while every
// request still goes through gqlgen's executor, so extensions, the error presenter and
// the recover func apply exactly as with the stock transports.
func NewGraphQL(es graphql.ExecutableSchema, opts GraphQLOptions) *handler.Server {
	srv := handler.New(es)
	for _, t := range opts.Transports {
		srv.AddTransport(t)
	}
	maxBody := opts.MaxBodyBytes
	if maxBody <= 0 {
		maxBody = DefaultMaxBodyBytes
	}
	srv.AddTransport(HTTPTransport{MaxBodyBytes: maxBody})

	qc := opts.QueryCacheSize
	if qc <= 0 {
		qc = 1000
	}
	srv.SetQueryCache(lru.New[*ast.QueryDocument](qc))
	if opts.ErrorPresenter != nil {
		srv.SetErrorPresenter(opts.ErrorPresenter)
	}
	if opts.RecoverFunc != nil {
		srv.SetRecoverFunc(opts.RecoverFunc)
	}

	// Persisted queries first: the extensions after them see the resolved query text.
	pq := &persistedQueries{manifest: opts.PersistedQueries}
	if opts.PersistedOnly {
		srv.Use(persistedOnly{manifest: opts.PersistedQueries})
	} else {
		n := opts.APQCacheSize
		if n <= 0 {
			n = 1000
		}
		pq.lru = lru.New[string](n)
	}
	srv.Use(apq{extension.AutomaticPersistedQuery{Cache: pq}})
	srv.Use(singleRootField{})
	if opts.Introspection {
		srv.Use(extension.Introspection{})
	}
	if opts.ComplexityLimit > 0 {
		srv.Use(extension.FixedComplexityLimit(opts.ComplexityLimit))
	}
	for _, ext := range opts.Extensions {
		srv.Use(ext)
	}
	return srv
}

// apq is gqlgen's automatic persisted queries with a code on every refusal: gqlgen sets
// one only on an unknown hash, and clients (and our error contract) tell refusals apart
// by extensions.code. A malformed extension, an unsupported version and a hash that
// does not match the query are the client's mistakes: BAD_REQUEST.
type apq struct {
	extension.AutomaticPersistedQuery
}

func (a apq) MutateOperationParameters(ctx context.Context, raw *graphql.RawParams) *gqlerror.Error {
	// A hash that is no SHA-256 (64 hex digits) can name no query: gqlgen would look it
	// up and answer PERSISTED_QUERY_NOT_FOUND, telling the client to retry with the text.
	if pq, ok := raw.Extensions["persistedQuery"].(map[string]any); ok {
		if h, ok := pq["sha256Hash"].(string); ok {
			if _, err := hex.DecodeString(h); err != nil || len(h) != 2*sha256.Size {
				return &gqlerror.Error{Message: "persistedQuery.sha256Hash must be 64 hex digits",
					Extensions: map[string]any{"code": CodeBadRequest}}
			}
		}
	}
	err := a.AutomaticPersistedQuery.MutateOperationParameters(ctx, raw)
	if err != nil && err.Extensions["code"] == nil {
		if err.Extensions == nil {
			err.Extensions = map[string]any{}
		}
		err.Extensions["code"] = CodeBadRequest
	}
	return err
}

// persistedQueries is the APQ store: the manifest, then (unless PersistedOnly) an LRU of
// the queries clients registered.
type persistedQueries struct {
	manifest map[string]string
	lru      *lru.LRU[string]
}

var _ graphql.Cache[string] = (*persistedQueries)(nil)

func (p *persistedQueries) Get(ctx context.Context, hash string) (string, bool) {
	if q, ok := p.manifest[hash]; ok {
		return q, true
	}
	if p.lru == nil {
		return "", false
	}
	return p.lru.Get(ctx, hash)
}

func (p *persistedQueries) Add(ctx context.Context, hash, query string) {
	if _, ok := p.manifest[hash]; ok || p.lru == nil {
		return
	}
	p.lru.Add(ctx, hash, query)
}

// persistedOnly refuses query texts that are not in the manifest. Requests with only a
// hash go on to the APQ extension, which finds the text in the manifest or answers
// PERSISTED_QUERY_NOT_FOUND.
type persistedOnly struct{ manifest map[string]string }

var _ interface {
	graphql.HandlerExtension
	graphql.OperationParameterMutator
} = persistedOnly{}

func (persistedOnly) ExtensionName() string                   { return "PersistedOnly" }
func (persistedOnly) Validate(graphql.ExecutableSchema) error { return nil }

func (p persistedOnly) MutateOperationParameters(_ context.Context, raw *graphql.RawParams) *gqlerror.Error {
	if raw.Query == "" {
		return nil
	}
	sum := sha256.Sum256([]byte(raw.Query))
	if _, ok := p.manifest[hex.EncodeToString(sum[:])]; ok {
		return nil
	}
	return &gqlerror.Error{
		Message:    "this server executes only persisted operations",
		Extensions: map[string]any{"code": CodePersistedQueryRequired},
	}
}

// HTTPTransport serves GraphQL over HTTP (GET and POST) as the GraphQL-over-HTTP spec
// says:
//
//   - Response media type negotiated from Accept: application/graphql-response+json or
//     application/json (also for */*, and when Accept is missing); neither -> 406.
//   - POST bodies must be application/json in UTF-8 (else 415), at most MaxBodyBytes
//     (else 413), valid UTF-8 and one JSON object with well-typed parameters (else 400).
//   - Request errors (the document does not parse or validate, variables do not coerce,
//     persisted query unknown or refused, complexity too high): under
//     application/graphql-response+json a 4xx and no "data" key; under application/json
//     200, as the spec asks of that legacy type.
//   - GET executes queries only: a mutation gets 405 with "Allow: POST".
//   - Executed operations get 200, with "data" (possibly null) and any field errors.
type HTTPTransport struct {
	// MaxBodyBytes caps a POST body; 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
}

var _ graphql.Transport = HTTPTransport{}

// Supports claims every request but WebSocket upgrades, so that a wrong method, Accept
// or Content-Type gets the precise status code rather than gqlgen's generic 400
// "transport not supported".
func (HTTPTransport) Supports(r *http.Request) bool {
	return !headerHasToken(r.Header, "Upgrade", "websocket")
}

const (
	typeJSON            = "application/json"
	typeGraphQLResponse = "application/graphql-response+json"
)

// Do implements graphql.Transport.
func (t HTTPTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	h := w.Header()
	h.Add("Vary", "Accept")
	switch r.Method {
	case http.MethodGet, http.MethodPost:
	case http.MethodOptions:
		h.Set("Allow", "GET, POST, OPTIONS")
		w.WriteHeader(http.StatusNoContent)
		return
	default:
		h.Set("Allow", "GET, POST, OPTIONS")
		writeRequestError(w, typeJSON, http.StatusMethodNotAllowed, CodeMethodNotAllowed,
			"the GraphQL endpoint accepts GET (queries) and POST")
		return
	}
	media, ok := negotiate(r.Header.Values("Accept"))
	if !ok {
		writeRequestError(w, typeJSON, http.StatusNotAcceptable, CodeNotAcceptable,
			"acceptable response types are application/graphql-response+json and application/json")
		return
	}

	start := graphql.Now()
	var params *graphql.RawParams
	var herr *requestError
	if r.Method == http.MethodGet {
		params, herr = readGET(r)
	} else {
		params, herr = t.readPOST(w, r)
	}
	if herr != nil {
		writeRequestError(w, media, herr.status, herr.code, herr.msg)
		return
	}
	params.Headers = r.Header
	params.ReadTime = graphql.TraceTiming{Start: start, End: graphql.Now()}

	ctx := r.Context()
	opCtx, errs := exec.CreateOperationContext(ctx, params)
	if errs != nil && params.OperationName == "" {
		for _, e := range errs {
			if e.Message == "operation  not found" { // gqlgen's text, with the empty name
				e.Message = "the document holds several operations: name the one to run in operationName"
			}
		}
	}
	if errs != nil {
		// A request error: nothing was executed.
		resp := exec.DispatchError(graphql.WithOperationContext(ctx, opCtx), errs)
		status := http.StatusOK
		if media == typeGraphQLResponse {
			status = requestErrorStatus(errs)
		}
		writeErrors(w, media, status, resp)
		return
	}
	switch op := opCtx.Operation.Operation; {
	case r.Method == http.MethodGet && op != ast.Query:
		h.Set("Allow", "POST")
		writeRequestError(w, media, http.StatusMethodNotAllowed, CodeMethodNotAllowed,
			"GET requests may only execute queries; send a "+string(op)+" with POST")
		return
	case op == ast.Subscription:
		status := http.StatusOK
		if media == typeGraphQLResponse {
			status = http.StatusBadRequest
		}
		writeRequestError(w, media, status, CodeBadRequest,
			"subscriptions are served over WebSocket (graphql-transport-ws) or SSE (POST with Accept: text/event-stream), not plain HTTP")
		return
	}

	responses, ctx := exec.DispatchOperation(ctx, opCtx)
	resp := responses(ctx)
	if resp == nil {
		// gqlgen's executor answers nothing when the context ended before execution
		// started (the deadline spent in parsing and validation, or the client gone):
		// answer as a request cut off while running is answered, never a bare
		// {"data": null} that fails without saying so.
		resp = &graphql.Response{Errors: gqlerror.List{{
			Message:    "the request timed out or was cancelled",
			Extensions: map[string]any{"code": bookstore.CodeUnavailable},
		}}}
	}
	b, err := json.Marshal(resp)
	if err != nil {
		panic(fmt.Errorf("marshal GraphQL response: %w", err)) // recovered and logged by handler.Server
	}
	h.Set("Content-Type", media+"; charset=utf-8")
	if !Public(opCtx.Operation) || r.Header.Get("Authorization") != "" || r.Header.Get("Cookie") != "" {
		// A customer's data, a cart (its id is a capability), tokens: never kept by a
		// browser's or a shared cache. Only public catalog queries may be.
		h.Set("Cache-Control", "private, no-store")
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// requestErrorStatus is the status of a request error under
// application/graphql-response+json: 400, except an unknown persisted query (404, which
// Apollo's link treats as "send the text" without turning persisted queries off for the
// session as it does on 400) and a refused non-persisted one (403: retrying will not help).
func requestErrorStatus(errs gqlerror.List) int {
	for _, e := range errs {
		switch code, _ := e.Extensions["code"].(string); code {
		case CodePersistedQueryNotFound:
			return http.StatusNotFound
		case CodePersistedQueryRequired:
			return http.StatusForbidden
		}
	}
	return http.StatusBadRequest
}

type requestError struct {
	status    int
	code, msg string
}

func badRequest(format string, args ...any) *requestError {
	return &requestError{status: http.StatusBadRequest, code: CodeBadRequest, msg: fmt.Sprintf(format, args...)}
}

// postBody is the JSON body of a POST. Typed fields make the decoder reject wrong types
// (a number as query, a string as variables) with the field's name.
type postBody struct {
	Query         *string        `json:"query"`
	OperationName *string        `json:"operationName"`
	Variables     map[string]any `json:"variables"`
	Extensions    map[string]any `json:"extensions"`
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func (t HTTPTransport) readPOST(w http.ResponseWriter, r *http.Request) (*graphql.RawParams, *requestError) {
	mt, p, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != typeJSON || (p["charset"] != "" && !strings.EqualFold(p["charset"], "utf-8")) {
		return nil, &requestError{http.StatusUnsupportedMediaType, CodeUnsupportedMediaType,
			"the request body must be application/json (utf-8)"}
	}
	limit := t.MaxBodyBytes
	if limit <= 0 {
		limit = DefaultMaxBodyBytes
	}
	tooLarge := &requestError{http.StatusRequestEntityTooLarge, CodePayloadTooLarge,
		"the request body exceeds " + strconv.FormatInt(limit, 10) + " bytes"}
	if r.ContentLength > limit {
		return nil, tooLarge
	}
	buf := bufPool.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= 64<<10 { // do not pin the odd huge buffer
			buf.Reset()
			bufPool.Put(buf)
		}
	}()
	buf.Reset()
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit)); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge
		}
		return nil, badRequest("could not read the request body")
	}
	body := buf.Bytes()
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, badRequest("the request body is empty; send a JSON object with a query")
	}
	if !utf8.Valid(body) {
		return nil, badRequest("the request body is not valid UTF-8")
	}
	var pb postBody
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber() // as gqlgen does: Int and Float coercion see the literal
	if err := dec.Decode(&pb); err != nil {
		return nil, jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, badRequest("the request body must hold a single JSON object")
	}
	params := &graphql.RawParams{Variables: pb.Variables, Extensions: pb.Extensions}
	if pb.Query != nil {
		params.Query = *pb.Query
	}
	if pb.OperationName != nil {
		params.OperationName = *pb.OperationName
	}
	if err := checkQuery(params); err != nil {
		return nil, err
	}
	return params, nil
}

// jsonError explains a body that does not decode, without echoing it.
func jsonError(err error) *requestError {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		switch te.Field {
		case "":
			return badRequest("the request body must be a JSON object, not %s", te.Value)
		case "query", "operationName":
			return badRequest("%q must be a string, not %s", te.Field, te.Value)
		case "variables", "extensions":
			return badRequest("%q must be an object, not %s", te.Field, te.Value)
		}
		return badRequest("%q has the wrong type (%s)", te.Field, te.Value)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return badRequest("the request body is not valid JSON: %v (at byte %d)", se, se.Offset)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return badRequest("the request body is not valid JSON: unexpected end of input")
	}
	return badRequest("the request body is not valid JSON")
}

func readGET(r *http.Request) (*graphql.RawParams, *requestError) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, badRequest("the query string is malformed")
	}
	params := &graphql.RawParams{Query: q.Get("query"), OperationName: q.Get("operationName")}
	for _, f := range []struct {
		name string
		dst  *map[string]any
	}{{"variables", &params.Variables}, {"extensions", &params.Extensions}} {
		s := q.Get(f.name)
		if s == "" {
			continue
		}
		if !utf8.ValidString(s) {
			return nil, badRequest("%q is not valid UTF-8", f.name)
		}
		dec := json.NewDecoder(strings.NewReader(s))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, badRequest("%q must be a JSON-encoded object", f.name)
		}
		if _, err := dec.Token(); err != io.EOF {
			return nil, badRequest("%q must be a JSON-encoded object", f.name)
		}
		switch v := v.(type) {
		case map[string]any:
			*f.dst = v
		case nil:
		default:
			return nil, badRequest("%q must be a JSON-encoded object", f.name)
		}
	}
	if !utf8.ValidString(params.Query) || !utf8.ValidString(params.OperationName) {
		return nil, badRequest("the query string is not valid UTF-8")
	}
	if err := checkQuery(params); err != nil {
		return nil, err
	}
	return params, nil
}

// checkQuery: a request carries a query, or a persisted query's hash instead.
func checkQuery(p *graphql.RawParams) *requestError {
	if p.Query == "" && p.Extensions["persistedQuery"] == nil {
		return badRequest(`missing "query"`)
	}
	return nil
}

// errorBody is a response without a "data" key: the shape of request errors.
type errorBody struct {
	Errors     gqlerror.List  `json:"errors"`
	Extensions map[string]any `json:"extensions,omitempty"`
}

func writeErrors(w http.ResponseWriter, media string, status int, resp *graphql.Response) {
	body := errorBody{}
	if resp != nil {
		body.Errors, body.Extensions = resp.Errors, resp.Extensions
	}
	b, err := json.Marshal(body)
	if err != nil {
		panic(fmt.Errorf("marshal GraphQL errors: %w", err))
	}
	h := w.Header()
	h.Set("Content-Type", media+"; charset=utf-8")
	// Never let a shared cache keep a refusal (an unknown persisted query above all: the
	// client registers it right after).
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func writeRequestError(w http.ResponseWriter, media string, status int, code, msg string) {
	writeErrors(w, media, status, &graphql.Response{Errors: gqlerror.List{{
		Message:    msg,
		Extensions: map[string]any{"code": code},
	}}})
}

// negotiate picks the response media type from the Accept header values: the acceptable
// type with the higher quality, application/graphql-response+json on a tie when named
// explicitly, application/json for wildcards and when there is no Accept header (as the
// spec recommends for legacy clients). ok is false when neither is acceptable.
func negotiate(accept []string) (media string, ok bool) {
	if len(accept) == 0 {
		return typeJSON, true
	}
	type match struct {
		q           float64
		specificity int // 0 none, 1 */*, 2 application/*, 3 exact
	}
	var jsonM, gqlM match
	seen := false
	for _, line := range accept {
		for part := range strings.SplitSeq(line, ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			seen = true
			mt, params, err := mime.ParseMediaType(part)
			if err != nil {
				continue
			}
			q := 1.0
			if s, ok := params["q"]; ok {
				if q, err = strconv.ParseFloat(s, 64); err != nil || q < 0 || q > 1 {
					continue
				}
			}
			if cs := params["charset"]; cs != "" && !strings.EqualFold(cs, "utf-8") {
				continue // we only speak UTF-8
			}
			consider := func(m *match, exact string) {
				spec := 0
				switch mt {
				case exact:
					spec = 3
				case "application/*":
					spec = 2
				case "*/*":
					spec = 1
				}
				if spec > m.specificity || (spec == m.specificity && spec > 0 && q > m.q) {
					*m = match{q: q, specificity: spec}
				}
			}
			consider(&jsonM, typeJSON)
			consider(&gqlM, typeGraphQLResponse)
		}
	}
	if !seen {
		return typeJSON, true
	}
	okJSON := jsonM.specificity > 0 && jsonM.q > 0
	okGQL := gqlM.specificity > 0 && gqlM.q > 0
	switch {
	case okGQL && okJSON:
		if gqlM.q > jsonM.q || (gqlM.q == jsonM.q && gqlM.specificity == 3) {
			return typeGraphQLResponse, true
		}
		return typeJSON, true
	case okGQL:
		return typeGraphQLResponse, true
	case okJSON:
		return typeJSON, true
	}
	return "", false
}

// headerHasToken reports whether a comma-separated header holds token (case-insensitive).
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for part := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(part), token) {
				return true
			}
		}
	}
	return false
}
