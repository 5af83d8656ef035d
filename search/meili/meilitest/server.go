// Package meilitest is an in-memory fake of the Meilisearch HTTP API, for testing the
// Meilisearch adapter without a server. It follows the documented API closely enough
// that a request of the wrong shape fails:
//
//   - every route but /health wants "Authorization: Bearer <key>" (401 without, 403
//     with a wrong key) when the server has a key;
//   - writes (index creation, settings, documents) are tasks: they answer 202 with an
//     enqueued task and take effect only when processed, in order, which happens when
//     the task is polled (GET /tasks/:uid) or after ProcessDelay - so a client that
//     searches without waiting sees the old state;
//   - request bodies are decoded strictly (unknown fields are rejected, as Meilisearch
//     does), filters are parsed with Meilisearch's filter grammar (see filter.go) and
//     may only name filterable attributes, sorts only sortable ones, facets only
//     filterable ones;
//   - search supports q (words, prefix on the last word, typos by word length from the
//     typoTolerance setting, "phrases"), matchingStrategy "last" (the default) and
//     "all", attributesToSearchOn, filter, facets (facetDistribution and facetStats,
//     maxValuesPerFacet and sortFacetValuesBy), sort, offset/limit (estimatedTotalHits)
//     and page/hitsPerPage (totalHits, totalPages) bounded by pagination.maxTotalHits,
//     attributesToRetrieve, highlighting and cropping in _formatted, and the ranking
//     rules words, typo, attribute, sort, exactness and custom attribute:asc|desc
//     (proximity is ignored);
//   - /swap-indexes: pairs of existing indexes exchange their documents and settings in
//     one task, all pairs or none (a missing index fails the task, an index named twice
//     or a pair of other than two indexes is refused at once); "rename" is refused as
//     an unknown field unless the server was made WithSwapRename (Meilisearch 1.18+),
//     and then with "rename" the first index takes the second's name, which must be free;
//   - GET /indexes/:uid/documents/:id (with fields) and POST /indexes/:uid/documents/fetch
//     (offset, limit, fields, filter on filterable attributes, ids);
//   - /multi-search (without federation), and /indexes/:uid/facet-search, which like
//     Meilisearch's matches the normalised facet query against the beginning of whole
//     facet values (typos allowed by length).
//
// Text is analysed like the embedded engine does (lower case, accents folded, anything
// but letters and digits separating); real Meilisearch segments text with its own
// tokenizer, so relevance details differ while the contract holds.
package meilitest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ProcessDelay is how long an enqueued task waits before the server processes it on
// its own.
const ProcessDelay = 200 * time.Millisecond

// Server is a fake Meilisearch.
type Server struct {
	*httptest.Server
	key    string
	rename bool // /swap-indexes accepts "rename" (1.18+)

	mu       sync.Mutex
	indexes  map[string]*index
	tasks    []*task
	calls    map[string]int
	stop     chan struct{}
	stopOnce sync.Once
}

// Option configures a fake Server.
type Option func(*Server)

// WithSwapRename models Meilisearch 1.18 and later, whose /swap-indexes accepts
// "rename". Without it the fake is an older Meilisearch (the adapter supports 1.4+),
// refusing "rename" as an unknown field.
func WithSwapRename() Option { return func(s *Server) { s.rename = true } }

// NewServer starts a fake Meilisearch requiring the API key key ("" accepts any
// request). Close it when done.
func NewServer(key string, opts ...Option) *Server {
	s := &Server{key: key, indexes: map[string]*index{}, calls: map[string]int{}, stop: make(chan struct{})}
	for _, o := range opts {
		o(s)
	}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	go s.processLoop()
	return s
}

// Close stops the server.
func (s *Server) Close() {
	s.stopOnce.Do(func() { close(s.stop) })
	s.Server.Close()
}

// Calls returns how many requests matched route, written "METHOD /path" with ":uid"
// for an index or task id ("POST /multi-search", "POST /indexes/:uid/search").
func (s *Server) Calls(route string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[route]
}

// ResetCalls forgets the counted calls.
func (s *Server) ResetCalls() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = map[string]int{}
}

func (s *Server) processLoop() {
	t := time.NewTicker(ProcessDelay / 4)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			s.mu.Lock()
			for _, tk := range s.tasks {
				if tk.Status == "enqueued" && now.Sub(tk.EnqueuedAt) >= ProcessDelay {
					s.processUpTo(tk.UID)
				}
			}
			s.mu.Unlock()
		}
	}
}

// apiError is Meilisearch's error body.
type apiError struct {
	Message string `json:"message"`
	Code    string `json:"code"`
	Type    string `json:"type"`
	Link    string `json:"link"`
	status  int
}

func errorf(status int, code, format string, args ...any) *apiError {
	typ := "invalid_request"
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		typ = "auth"
	case status >= 500:
		typ = "internal"
	}
	return &apiError{Message: fmt.Sprintf(format, args...), Code: code, Type: typ,
		Link: "https://docs.meilisearch.com/errors#" + code, status: status}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, e *apiError) { writeJSON(w, e.status, e) }

var (
	indexUIDRE = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,400}$`)
	docIDRE    = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,511}$`)
)

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	path := strings.Trim(r.URL.Path, "/")
	parts := strings.Split(path, "/")
	route := r.Method + " /" + path
	if len(parts) >= 2 && (parts[0] == "indexes" || parts[0] == "tasks") {
		p := slices.Clone(parts)
		p[1] = ":uid"
		route = r.Method + " /" + strings.Join(p, "/")
	}
	s.mu.Lock()
	s.calls[route]++
	s.mu.Unlock()

	if path == "health" && r.Method == http.MethodGet {
		writeJSON(w, http.StatusOK, map[string]string{"status": "available"})
		return
	}
	if s.key != "" {
		auth := r.Header.Get("Authorization")
		if auth == "" {
			writeError(w, errorf(http.StatusUnauthorized, "missing_authorization_header", "The Authorization header is missing. It must use the bearer authorization method."))
			return
		}
		if !strings.HasPrefix(auth, "Bearer ") || strings.TrimPrefix(auth, "Bearer ") != s.key {
			writeError(w, errorf(http.StatusForbidden, "invalid_api_key", "The provided API key is invalid."))
			return
		}
	}
	var body []byte
	if r.Body != nil {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			writeError(w, errorf(http.StatusBadRequest, "bad_request", "could not read the body: %v", err))
			return
		}
		body = b
	}
	if len(body) > 0 && !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		writeError(w, errorf(http.StatusUnsupportedMediaType, "invalid_content_type", "The Content-Type `%s` is invalid. Accepted values for the Content-Type header are: `application/json`", r.Header.Get("Content-Type")))
		return
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	status, resp, aerr := s.route(r.Method, parts, r, body)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	writeJSON(w, status, resp)
}

func notFound(parts []string) *apiError {
	return errorf(http.StatusNotFound, "not_found", "Route /%s not found.", strings.Join(parts, "/"))
}

func methodNotAllowed() *apiError {
	return errorf(http.StatusMethodNotAllowed, "method_not_allowed", "Method not allowed.")
}

func (s *Server) route(method string, parts []string, r *http.Request, body []byte) (int, any, *apiError) {
	switch {
	case len(parts) == 1 && parts[0] == "swap-indexes":
		if method != http.MethodPost {
			return 0, nil, methodNotAllowed()
		}
		return s.swapIndexes(body)
	case len(parts) == 1 && parts[0] == "multi-search":
		if method != http.MethodPost {
			return 0, nil, methodNotAllowed()
		}
		return s.multiSearch(body)
	case len(parts) == 2 && parts[0] == "tasks":
		if method != http.MethodGet {
			return 0, nil, methodNotAllowed()
		}
		uid, err := strconv.ParseInt(parts[1], 10, 64)
		if err != nil || uid < 0 {
			return 0, nil, errorf(http.StatusBadRequest, "invalid_task_uids", "Invalid value in parameter `taskUid`: could not parse `%s` as a positive integer", parts[1])
		}
		s.processUpTo(uid)
		for _, t := range s.tasks {
			if t.UID == uid {
				return http.StatusOK, t.view(), nil
			}
		}
		return 0, nil, errorf(http.StatusNotFound, "task_not_found", "Task `%d` not found.", uid)
	case len(parts) == 1 && parts[0] == "indexes":
		switch method {
		case http.MethodPost:
			var req struct {
				UID        *string `json:"uid"`
				PrimaryKey *string `json:"primaryKey"`
			}
			if e := decodeStrict(body, &req, "bad_request"); e != nil {
				return 0, nil, e
			}
			if req.UID == nil {
				return 0, nil, errorf(http.StatusBadRequest, "missing_index_uid", "Missing field `uid`")
			}
			if !indexUIDRE.MatchString(*req.UID) {
				return 0, nil, errorf(http.StatusBadRequest, "invalid_index_uid", "`%s` is not a valid index uid.", *req.UID)
			}
			uid, pk := *req.UID, ""
			if req.PrimaryKey != nil {
				pk = *req.PrimaryKey
			}
			return s.enqueue(uid, "indexCreation", map[string]any{"primaryKey": req.PrimaryKey}, func() *apiError {
				if _, ok := s.indexes[uid]; ok {
					return errorf(http.StatusConflict, "index_already_exists", "Index `%s` already exists.", uid)
				}
				s.indexes[uid] = newIndex(uid, pk)
				return nil
			})
		case http.MethodGet:
			offset, limit := 0, 20
			if v, err := strconv.Atoi(r.URL.Query().Get("offset")); err == nil && v >= 0 {
				offset = v
			}
			if v, err := strconv.Atoi(r.URL.Query().Get("limit")); err == nil && v >= 0 {
				limit = v
			}
			uids := sortedKeys(s.indexes)
			results := []any{}
			for _, uid := range uids[min(offset, len(uids)):min(offset+limit, len(uids))] {
				results = append(results, s.indexes[uid].view())
			}
			return http.StatusOK, map[string]any{"results": results, "offset": offset, "limit": limit, "total": len(uids)}, nil
		}
		return 0, nil, methodNotAllowed()
	case len(parts) >= 2 && parts[0] == "indexes":
		return s.routeIndex(method, parts[1], parts[2:], r, body)
	}
	return 0, nil, notFound(parts)
}

func (s *Server) routeIndex(method, uid string, rest []string, r *http.Request, body []byte) (int, any, *apiError) {
	if !indexUIDRE.MatchString(uid) {
		return 0, nil, errorf(http.StatusBadRequest, "invalid_index_uid", "`%s` is not a valid index uid.", uid)
	}
	ix := s.indexes[uid]
	missing := errorf(http.StatusNotFound, "index_not_found", "Index `%s` not found.", uid)
	if len(rest) == 2 && rest[0] == "documents" && rest[1] != "delete-batch" && rest[1] != "fetch" && rest[1] != "delete" {
		if method != http.MethodGet {
			return 0, nil, methodNotAllowed()
		}
		if ix == nil {
			return 0, nil, missing
		}
		d, ok := ix.docs[rest[1]]
		if !ok {
			return 0, nil, errorf(http.StatusNotFound, "document_not_found", "Document `%s` not found.", rest[1])
		}
		if f := r.URL.Query().Get("fields"); f != "" && f != "*" {
			out := map[string]any{}
			for _, k := range strings.Split(f, ",") {
				if v, ok := d[strings.TrimSpace(k)]; ok {
					out[strings.TrimSpace(k)] = v
				}
			}
			return http.StatusOK, out, nil
		}
		return http.StatusOK, d, nil
	}
	switch strings.Join(rest, "/") {
	case "":
		switch method {
		case http.MethodGet:
			if ix == nil {
				return 0, nil, missing
			}
			return http.StatusOK, ix.view(), nil
		case http.MethodDelete:
			return s.enqueue(uid, "indexDeletion", map[string]any{}, func() *apiError {
				if s.indexes[uid] == nil {
					return errorf(http.StatusNotFound, "index_not_found", "Index `%s` not found.", uid)
				}
				delete(s.indexes, uid)
				return nil
			})
		}
		return 0, nil, methodNotAllowed()
	case "settings":
		switch method {
		case http.MethodGet:
			if ix == nil {
				return 0, nil, missing
			}
			return http.StatusOK, ix.settings, nil
		case http.MethodPatch:
			upd, e := parseSettings(body)
			if e != nil {
				return 0, nil, e
			}
			return s.enqueue(uid, "settingsUpdate", map[string]any{}, func() *apiError {
				ix := s.indexOrCreate(uid)
				upd(&ix.settings)
				return nil
			})
		}
		return 0, nil, methodNotAllowed()
	case "documents":
		if method != http.MethodPost && method != http.MethodPut {
			return 0, nil, methodNotAllowed()
		}
		var docs []map[string]any
		if err := json.Unmarshal(body, &docs); err != nil {
			return 0, nil, errorf(http.StatusBadRequest, "malformed_payload", "The `json` payload provided is malformed. `%v`.", err)
		}
		pk := r.URL.Query().Get("primaryKey")
		replace := method == http.MethodPost
		return s.enqueue(uid, "documentAdditionOrUpdate", map[string]any{"receivedDocuments": len(docs)}, func() *apiError {
			ix := s.indexOrCreate(uid)
			if ix.primaryKey == "" {
				ix.primaryKey = pk
			}
			if ix.primaryKey == "" {
				ix.primaryKey = "id"
			}
			for _, d := range docs {
				id, e := documentID(d, ix.primaryKey)
				if e != nil {
					return e
				}
				if old, ok := ix.docs[id]; ok && !replace {
					for k, v := range d {
						old[k] = v
					}
					continue
				}
				if _, ok := ix.docs[id]; !ok {
					ix.seq++
					ix.order[id] = ix.seq
				}
				ix.docs[id] = d
			}
			ix.updatedAt = time.Now().UTC()
			return nil
		})
	case "documents/fetch":
		if method != http.MethodPost {
			return 0, nil, methodNotAllowed()
		}
		if ix == nil {
			return 0, nil, missing
		}
		var req struct {
			Offset          int      `json:"offset"`
			Limit           *int     `json:"limit"`
			Fields          []string `json:"fields"`
			Filter          any      `json:"filter"`
			RetrieveVectors bool     `json:"retrieveVectors"`
			IDs             []any    `json:"ids"`
			Sort            []string `json:"sort"`
		}
		if e := decodeStrict(body, &req, "bad_request"); e != nil {
			return 0, nil, e
		}
		if len(req.Sort) > 0 {
			return 0, nil, errorf(http.StatusNotImplemented, "not_implemented", "the fake does not sort fetched documents")
		}
		flt, err := parseFilter(req.Filter, ix.filterable())
		if err != nil {
			return 0, nil, errorf(http.StatusBadRequest, "invalid_document_filter", "%s", err.Error())
		}
		limit := 20
		if req.Limit != nil {
			limit = max(*req.Limit, 0)
		}
		want := map[string]bool{}
		for _, v := range req.IDs {
			want[fmt.Sprint(v)] = true
		}
		ids := sortedKeys(ix.docs)
		sort.SliceStable(ids, func(a, b int) bool { return ix.order[ids[a]] < ix.order[ids[b]] })
		var matched []map[string]any
		for _, id := range ids {
			d := ix.docs[id]
			if (len(req.IDs) > 0 && !want[id]) || (flt != nil && !flt.eval(d)) {
				continue
			}
			matched = append(matched, d)
		}
		results := []map[string]any{}
		for i := req.Offset; i < len(matched) && len(results) < limit; i++ {
			d := matched[i]
			if len(req.Fields) > 0 && !slices.Contains(req.Fields, "*") {
				p := map[string]any{}
				for _, f := range req.Fields {
					if v, ok := d[f]; ok {
						p[f] = v
					}
				}
				d = p
			}
			results = append(results, d)
		}
		return http.StatusOK, map[string]any{"results": results, "offset": req.Offset, "limit": limit, "total": len(matched)}, nil
	case "documents/delete-batch":
		if method != http.MethodPost {
			return 0, nil, methodNotAllowed()
		}
		var ids []any
		if err := json.Unmarshal(body, &ids); err != nil {
			return 0, nil, errorf(http.StatusBadRequest, "malformed_payload", "The `json` payload provided is malformed. `%v`.", err)
		}
		return s.enqueue(uid, "documentDeletion", map[string]any{"providedIds": len(ids)}, func() *apiError {
			ix := s.indexes[uid]
			if ix == nil {
				return errorf(http.StatusNotFound, "index_not_found", "Index `%s` not found.", uid)
			}
			for _, v := range ids {
				id := fmt.Sprint(v)
				delete(ix.docs, id)
				delete(ix.order, id)
			}
			return nil
		})
	case "stats":
		if method != http.MethodGet {
			return 0, nil, methodNotAllowed()
		}
		if ix == nil {
			return 0, nil, missing
		}
		fields := map[string]int{}
		for _, d := range ix.docs {
			for k := range d {
				fields[k]++
			}
		}
		return http.StatusOK, map[string]any{
			"numberOfDocuments": len(ix.docs), "isIndexing": s.pending(uid), "fieldDistribution": fields,
			"rawDocumentDbSize": 0, "avgDocumentSize": 0, "numberOfEmbeddedDocuments": 0, "numberOfEmbeddings": 0,
		}, nil
	case "search":
		if method != http.MethodPost {
			return 0, nil, methodNotAllowed()
		}
		if ix == nil {
			return 0, nil, missing
		}
		var p searchParams
		if e := decodeSearch(body, &p, false); e != nil {
			return 0, nil, e
		}
		res, e := ix.search(&p)
		if e != nil {
			return 0, nil, e
		}
		return http.StatusOK, res, nil
	case "facet-search":
		if method != http.MethodPost {
			return 0, nil, methodNotAllowed()
		}
		if ix == nil {
			return 0, nil, missing
		}
		res, e := ix.facetSearch(body)
		if e != nil {
			return 0, nil, e
		}
		return http.StatusOK, res, nil
	}
	return 0, nil, notFound(append([]string{"indexes", uid}, rest...))
}

// swapIndexes is POST /swap-indexes: the shape is checked at once, the existence of the
// indexes when the task runs, and the task swaps every pair or none.
func (s *Server) swapIndexes(body []byte) (int, any, *apiError) {
	var raw []json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return 0, nil, errorf(http.StatusBadRequest, "bad_request", "The json payload provided is malformed. `%v`.", err)
	}
	type swap struct {
		Indexes []string `json:"indexes"`
		Rename  bool     `json:"rename"`
	}
	swaps := make([]swap, len(raw))
	seen := map[string]bool{}
	for i, r := range raw {
		var req struct {
			Indexes *[]string `json:"indexes"`
			Rename  *bool     `json:"rename"`
		}
		var old struct {
			Indexes *[]string `json:"indexes"`
		}
		if !s.rename { // before 1.18 the payload is only "indexes", unknown fields refused
			if e := decodeStrict(r, &old, "bad_request"); e != nil {
				return 0, nil, e
			}
		}
		if e := decodeStrict(r, &req, "invalid_swap_indexes"); e != nil {
			return 0, nil, e
		}
		if req.Indexes == nil {
			return 0, nil, errorf(http.StatusBadRequest, "missing_swap_indexes", "Missing field `indexes` at `[%d]`", i)
		}
		if len(*req.Indexes) != 2 {
			return 0, nil, errorf(http.StatusBadRequest, "invalid_swap_indexes", "Invalid value at `[%d].indexes`: two indexes must be given for each swap. The list `%v` contains %d indexes.", i, *req.Indexes, len(*req.Indexes))
		}
		for _, uid := range *req.Indexes {
			if !indexUIDRE.MatchString(uid) {
				return 0, nil, errorf(http.StatusBadRequest, "invalid_index_uid", "`%s` is not a valid index uid.", uid)
			}
			if seen[uid] {
				return 0, nil, errorf(http.StatusBadRequest, "invalid_swap_duplicate_index_found", "Indexes must be declared only once during a swap. `%s` was specified several times.", uid)
			}
			seen[uid] = true
		}
		swaps[i] = swap{Indexes: *req.Indexes, Rename: req.Rename != nil && *req.Rename}
	}
	details := make([]any, len(swaps))
	for i, sw := range swaps {
		details[i] = map[string]any{"indexes": sw.Indexes, "rename": sw.Rename}
	}
	return s.enqueue("", "indexSwap", map[string]any{"swaps": details}, func() *apiError {
		for _, sw := range swaps {
			a, b := sw.Indexes[0], sw.Indexes[1]
			if s.indexes[a] == nil {
				return errorf(http.StatusNotFound, "index_not_found", "Index `%s` not found.", a)
			}
			if sw.Rename && s.indexes[b] != nil {
				return errorf(http.StatusConflict, "index_already_exists", "Index `%s` already exists.", b)
			}
			if !sw.Rename && s.indexes[b] == nil {
				return errorf(http.StatusNotFound, "index_not_found", "Index `%s` not found.", b)
			}
		}
		for _, sw := range swaps {
			a, b := sw.Indexes[0], sw.Indexes[1]
			if sw.Rename {
				s.indexes[b] = s.indexes[a]
				delete(s.indexes, a)
			} else {
				s.indexes[a], s.indexes[b] = s.indexes[b], s.indexes[a]
				s.indexes[a].uid = a
			}
			s.indexes[b].uid = b
		}
		return nil
	})
}

func (s *Server) indexOrCreate(uid string) *index {
	ix := s.indexes[uid]
	if ix == nil {
		ix = newIndex(uid, "")
		s.indexes[uid] = ix
	}
	return ix
}

func documentID(d map[string]any, pk string) (string, *apiError) {
	v, ok := d[pk]
	if !ok {
		return "", errorf(http.StatusBadRequest, "missing_document_id", "Document doesn't have a `%s` attribute: `%v`.", pk, d)
	}
	var id string
	switch x := v.(type) {
	case string:
		id = x
	case float64:
		if x != float64(int64(x)) || x < 0 {
			return "", errorf(http.StatusBadRequest, "invalid_document_id", "Document identifier `%v` is invalid.", x)
		}
		id = strconv.FormatInt(int64(x), 10)
	default:
		return "", errorf(http.StatusBadRequest, "invalid_document_id", "Document identifier `%v` is invalid.", v)
	}
	if !docIDRE.MatchString(id) {
		return "", errorf(http.StatusBadRequest, "invalid_document_id", "Document identifier `%q` is invalid. A document identifier can be of type integer or string, only composed of alphanumeric characters (a-z A-Z 0-9), hyphens (-) and underscores (_), and can not be more than 511 bytes.", id)
	}
	return id, nil
}

// decodeStrict decodes a JSON object rejecting unknown fields (names are exact).
func decodeStrict(body []byte, v any, code string) *apiError {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return errorf(http.StatusBadRequest, "bad_request", "The json payload provided is malformed. `%v`.", err)
	}
	known := jsonFields(v)
	for k := range raw {
		if !known[k] {
			return errorf(http.StatusBadRequest, code, "Unknown field `%s`: expected one of %s", k, strings.Join(sortedKeys(known), ", "))
		}
	}
	if err := json.Unmarshal(body, v); err != nil {
		return errorf(http.StatusBadRequest, code, "Invalid value: %v", err)
	}
	return nil
}

// ---------------------------------------------------------------------------------------
// Tasks.

type task struct {
	UID        int64          `json:"uid"`
	IndexUID   string         `json:"indexUid"`
	Status     string         `json:"status"`
	Type       string         `json:"type"`
	Details    map[string]any `json:"details"`
	Error      *apiError      `json:"error"`
	EnqueuedAt time.Time      `json:"enqueuedAt"`
	StartedAt  *time.Time     `json:"startedAt"`
	FinishedAt *time.Time     `json:"finishedAt"`
	run        func() *apiError
}

func (t *task) view() map[string]any {
	var uid any // null for tasks of no one index (swaps)
	if t.IndexUID != "" {
		uid = t.IndexUID
	}
	v := map[string]any{
		"uid": t.UID, "batchUid": t.UID, "indexUid": uid, "status": t.Status, "type": t.Type,
		"canceledBy": nil, "details": t.Details, "error": t.Error, "duration": nil,
		"enqueuedAt": t.EnqueuedAt.Format(time.RFC3339Nano), "startedAt": nil, "finishedAt": nil,
	}
	if t.StartedAt != nil {
		v["startedAt"] = t.StartedAt.Format(time.RFC3339Nano)
	}
	if t.FinishedAt != nil {
		v["finishedAt"] = t.FinishedAt.Format(time.RFC3339Nano)
		v["duration"] = "PT0.001S"
	}
	return v
}

func (s *Server) enqueue(uid, typ string, details map[string]any, run func() *apiError) (int, any, *apiError) {
	t := &task{UID: int64(len(s.tasks)), IndexUID: uid, Status: "enqueued", Type: typ, Details: details,
		EnqueuedAt: time.Now().UTC(), run: run}
	s.tasks = append(s.tasks, t)
	var iu any
	if uid != "" {
		iu = uid
	}
	return http.StatusAccepted, map[string]any{
		"taskUid": t.UID, "indexUid": iu, "status": t.Status, "type": typ,
		"enqueuedAt": t.EnqueuedAt.Format(time.RFC3339Nano),
	}, nil
}

// processUpTo runs the enqueued tasks up to uid, in order.
func (s *Server) processUpTo(uid int64) {
	for _, t := range s.tasks {
		if t.UID > uid {
			break
		}
		if t.Status != "enqueued" {
			continue
		}
		now := time.Now().UTC()
		t.StartedAt = &now
		if e := t.run(); e != nil {
			t.Status, t.Error = "failed", e
		} else {
			t.Status = "succeeded"
		}
		done := time.Now().UTC()
		t.FinishedAt = &done
	}
}

func (s *Server) pending(uid string) bool {
	for _, t := range s.tasks {
		if t.IndexUID == uid && t.Status == "enqueued" {
			return true
		}
	}
	return false
}

// ---------------------------------------------------------------------------------------
// Indexes and settings.

type typoTolerance struct {
	Enabled             bool `json:"enabled"`
	MinWordSizeForTypos struct {
		OneTypo  int `json:"oneTypo"`
		TwoTypos int `json:"twoTypos"`
	} `json:"minWordSizeForTypos"`
	DisableOnWords      []string `json:"disableOnWords"`
	DisableOnAttributes []string `json:"disableOnAttributes"`
	DisableOnNumbers    bool     `json:"disableOnNumbers"`
}

type settings struct {
	DisplayedAttributes  []string            `json:"displayedAttributes"`
	SearchableAttributes []string            `json:"searchableAttributes"`
	FilterableAttributes []string            `json:"filterableAttributes"`
	SortableAttributes   []string            `json:"sortableAttributes"`
	RankingRules         []string            `json:"rankingRules"`
	StopWords            []string            `json:"stopWords"`
	Synonyms             map[string][]string `json:"synonyms"`
	DistinctAttribute    *string             `json:"distinctAttribute"`
	TypoTolerance        typoTolerance       `json:"typoTolerance"`
	Pagination           struct {
		MaxTotalHits int `json:"maxTotalHits"`
	} `json:"pagination"`
	Faceting struct {
		MaxValuesPerFacet int               `json:"maxValuesPerFacet"`
		SortFacetValuesBy map[string]string `json:"sortFacetValuesBy"`
	} `json:"faceting"`
	SearchCutoffMs *int   `json:"searchCutoffMs"`
	FacetSearch    bool   `json:"facetSearch"`
	PrefixSearch   string `json:"prefixSearch"`
}

func defaultSettings() settings {
	var st settings
	st.DisplayedAttributes = []string{"*"}
	st.SearchableAttributes = []string{"*"}
	st.FilterableAttributes = []string{}
	st.SortableAttributes = []string{}
	st.RankingRules = []string{"words", "typo", "proximity", "attribute", "sort", "exactness"}
	st.StopWords = []string{}
	st.Synonyms = map[string][]string{}
	st.TypoTolerance.Enabled = true
	st.TypoTolerance.MinWordSizeForTypos.OneTypo = 5
	st.TypoTolerance.MinWordSizeForTypos.TwoTypos = 9
	st.TypoTolerance.DisableOnWords = []string{}
	st.TypoTolerance.DisableOnAttributes = []string{}
	st.Pagination.MaxTotalHits = 1000
	st.Faceting.MaxValuesPerFacet = 100
	st.Faceting.SortFacetValuesBy = map[string]string{"*": "alpha"}
	st.FacetSearch = true
	st.PrefixSearch = "indexingTime"
	return st
}

var rankingRuleRE = regexp.MustCompile(`^(words|typo|proximity|attribute|sort|exactness|attributeRank|wordPosition|[A-Za-z0-9_.]+:(asc|desc))$`)

// parseSettings validates a settings update and returns the function applying it.
func parseSettings(body []byte) (func(*settings), *apiError) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, errorf(http.StatusBadRequest, "bad_request", "The json payload provided is malformed. `%v`.", err)
	}
	known := jsonFields(&settings{})
	for _, k := range []string{"dictionary", "separatorTokens", "nonSeparatorTokens", "proximityPrecision", "localizedAttributes", "embedders", "chat"} {
		known[k] = true
	}
	for k := range raw {
		if !known[k] {
			return nil, errorf(http.StatusBadRequest, "bad_request", "Unknown field `%s`: expected one of %s", k, strings.Join(sortedKeys(known), ", "))
		}
	}
	var upd settings
	if err := json.Unmarshal(body, &upd); err != nil {
		return nil, errorf(http.StatusBadRequest, "bad_request", "Invalid value in settings: %v", err)
	}
	for _, rule := range upd.RankingRules {
		if !rankingRuleRE.MatchString(rule) {
			return nil, errorf(http.StatusBadRequest, "invalid_settings_ranking_rules", "`%s` ranking rule is invalid.", rule)
		}
	}
	if v, ok := raw["typoTolerance"]; ok && string(v) != "null" {
		var tt map[string]json.RawMessage
		json.Unmarshal(v, &tt)
		for k := range tt {
			if !jsonFields(&typoTolerance{})[k] {
				return nil, errorf(http.StatusBadRequest, "invalid_settings_typo_tolerance", "Unknown field `%s` inside `.typoTolerance`", k)
			}
		}
		if one, two := upd.TypoTolerance.MinWordSizeForTypos.OneTypo, upd.TypoTolerance.MinWordSizeForTypos.TwoTypos; one > two {
			return nil, errorf(http.StatusBadRequest, "invalid_settings_typo_tolerance", "`minWordSizeForTypos` setting is invalid. `oneTypo` and `twoTypos` fields should be between `0` and `255`, and `twoTypos` should be greater or equals to `oneTypo` but found `oneTypo: %d` and twoTypos: %d`.", one, two)
		}
	}
	return func(st *settings) {
		def := defaultSettings()
		for k, v := range raw {
			null := string(v) == "null"
			switch k {
			case "displayedAttributes":
				st.DisplayedAttributes = pick(null, def.DisplayedAttributes, upd.DisplayedAttributes)
			case "searchableAttributes":
				st.SearchableAttributes = pick(null, def.SearchableAttributes, upd.SearchableAttributes)
			case "filterableAttributes":
				st.FilterableAttributes = pick(null, def.FilterableAttributes, upd.FilterableAttributes)
			case "sortableAttributes":
				st.SortableAttributes = pick(null, def.SortableAttributes, upd.SortableAttributes)
			case "rankingRules":
				st.RankingRules = pick(null, def.RankingRules, upd.RankingRules)
			case "stopWords":
				st.StopWords = pick(null, def.StopWords, upd.StopWords)
			case "synonyms":
				st.Synonyms = pick(null, def.Synonyms, upd.Synonyms)
			case "distinctAttribute":
				st.DistinctAttribute = upd.DistinctAttribute
			case "typoTolerance":
				st.TypoTolerance = pick(null, def.TypoTolerance, upd.TypoTolerance)
			case "pagination":
				st.Pagination = pick(null, def.Pagination, upd.Pagination)
			case "faceting":
				st.Faceting = pick(null, def.Faceting, upd.Faceting)
				if st.Faceting.SortFacetValuesBy == nil {
					st.Faceting.SortFacetValuesBy = map[string]string{"*": "alpha"}
				}
			case "facetSearch":
				st.FacetSearch = null || upd.FacetSearch
			}
		}
	}, nil
}

func pick[T any](null bool, def, v T) T {
	if null {
		return def
	}
	return v
}

type index struct {
	uid        string
	primaryKey string
	createdAt  time.Time
	updatedAt  time.Time
	settings   settings
	docs       map[string]map[string]any
	order      map[string]int64 // insertion order, the last tie-break
	seq        int64
}

func newIndex(uid, pk string) *index {
	now := time.Now().UTC()
	return &index{uid: uid, primaryKey: pk, createdAt: now, updatedAt: now, settings: defaultSettings(),
		docs: map[string]map[string]any{}, order: map[string]int64{}}
}

func (ix *index) view() map[string]any {
	var pk any
	if ix.primaryKey != "" {
		pk = ix.primaryKey
	}
	return map[string]any{"uid": ix.uid, "primaryKey": pk,
		"createdAt": ix.createdAt.Format(time.RFC3339Nano), "updatedAt": ix.updatedAt.Format(time.RFC3339Nano)}
}

func (ix *index) filterable() map[string]bool {
	m := map[string]bool{}
	for _, a := range ix.settings.FilterableAttributes {
		m[a] = true
	}
	return m
}

func (ix *index) sortable() map[string]bool {
	m := map[string]bool{}
	for _, a := range ix.settings.SortableAttributes {
		m[a] = true
	}
	return m
}

// ---------------------------------------------------------------------------------------
// Helpers.

// jsonFields returns the JSON names of a struct's fields.
func jsonFields(v any) map[string]bool {
	out := map[string]bool{}
	b, _ := json.Marshal(v)
	var m map[string]json.RawMessage
	json.Unmarshal(b, &m)
	for k := range m {
		out[k] = true
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
