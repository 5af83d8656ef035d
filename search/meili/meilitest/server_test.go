package meilitest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func TestFilterParser(t *testing.T) {
	filterable := map[string]bool{"categories": true, "price_cents": true, "in_stock": true, "language": true}
	doc := map[string]any{"categories": []any{"fantasy", `odd"slug' \ x`}, "price_cents": 1299.0, "in_stock": true, "language": "en"}
	for _, tc := range []struct {
		filter string
		want   bool
		err    bool
	}{
		{`categories = fantasy`, true, false},
		{`categories = "Fantasy"`, true, false}, // case-insensitive
		{`categories IN ["romance", "fantasy"]`, true, false},
		{`categories NOT IN ["fantasy"]`, false, false},
		{`categories IN ["romance",]`, false, false},
		{`categories = "odd\"slug' \\ x"`, true, false},
		{`categories = 'odd"slug\' \\ x'`, true, false},
		{`categories = "Fantasy\" OR price_cents > 0"`, false, false},
		{`price_cents >= 1000 AND price_cents <= 2000`, true, false},
		{`price_cents 1000 TO 1299`, true, false},
		{`price_cents > 1299`, false, false},
		{`in_stock = true AND (language = fr OR language = EN)`, true, false},
		{`NOT in_stock = true`, false, false},
		{`language EXISTS`, true, false},
		{`language != en`, false, false},
		{`categories = "fantasy" OR price_cents > 0"`, false, true}, // unterminated quote
		{`categories = fantasy" OR price_cents > 0`, false, true},
		{`categories IN ["fantasy"`, false, true},
		{`rating >= 4`, false, true}, // not filterable
		{`categories =`, false, true},
		{`(categories = fantasy`, false, true},
		{`categories = AND`, false, true},
		{`categories = fantasy garbage`, false, true},
	} {
		n, err := parseFilter(tc.filter, filterable)
		if (err != nil) != tc.err {
			t.Errorf("%s: err %v, want error %v", tc.filter, err, tc.err)
			continue
		}
		if err == nil && n.eval(doc) != tc.want {
			t.Errorf("%s = %v, want %v", tc.filter, !tc.want, tc.want)
		}
	}
	// The array form: outer AND, inner OR.
	n, err := parseFilter([]any{"in_stock = true", []any{"language = fr", "language = en"}}, filterable)
	if err != nil || !n.eval(doc) {
		t.Errorf("array filter: %v", err)
	}
}

func do(t *testing.T, s *Server, method, path, key string, body any) (int, map[string]any) {
	t.Helper()
	var r *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	} else {
		r = bytes.NewReader(nil)
	}
	req, _ := http.NewRequest(method, s.URL+path, r)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func TestServerStrictness(t *testing.T) {
	s := NewServer("k")
	defer s.Close()
	if code, _ := do(t, s, "GET", "/health", "", nil); code != 200 {
		t.Errorf("health: %d", code)
	}
	if code, out := do(t, s, "GET", "/indexes", "", nil); code != 401 || out["code"] != "missing_authorization_header" {
		t.Errorf("no key: %d %v", code, out)
	}
	if code, out := do(t, s, "GET", "/indexes", "nope", nil); code != 403 || out["code"] != "invalid_api_key" {
		t.Errorf("bad key: %d %v", code, out)
	}
	code, out := do(t, s, "POST", "/indexes", "k", map[string]any{"uid": "books", "primaryKey": "id"})
	if code != 202 || out["status"] != "enqueued" {
		t.Fatalf("create: %d %v", code, out)
	}
	// Enqueued tasks wait until polled (or ProcessDelay).
	if code, _ := do(t, s, "GET", "/indexes/books", "k", nil); code != 404 {
		t.Errorf("index visible before its task ran: %d", code)
	}
	uid := int(out["taskUid"].(float64))
	if code, task := do(t, s, "GET", "/tasks/"+itoa(uid), "k", nil); code != 200 || task["status"] != "succeeded" {
		t.Errorf("task: %d %v", code, task)
	}
	if code, out := do(t, s, "POST", "/indexes/books/search", "k", map[string]any{"q": "x", "limt": 3}); code != 400 || !strings.Contains(out["message"].(string), "Unknown field `limt`") {
		t.Errorf("unknown search field: %d %v", code, out)
	}
	if code, out := do(t, s, "POST", "/indexes/books/search", "k", map[string]any{"filter": "categories = x"}); code != 400 || out["code"] != "invalid_search_filter" {
		t.Errorf("filter on a non-filterable attribute: %d %v", code, out)
	}
	if code, out := do(t, s, "POST", "/indexes/books/search", "k", map[string]any{"sort": []string{"price:asc"}}); code != 400 || out["code"] != "invalid_search_sort" {
		t.Errorf("sort on a non-sortable attribute: %d %v", code, out)
	}
	if code, out := do(t, s, "PATCH", "/indexes/books/settings", "k", map[string]any{"filterableAttribute": []string{"x"}}); code != 400 {
		t.Errorf("unknown setting: %d %v", code, out)
	}
	if code, out := do(t, s, "POST", "/multi-search", "k", map[string]any{"queries": []any{map[string]any{"q": "x"}}}); code != 400 || out["code"] != "missing_index_uid" {
		t.Errorf("multi-search without indexUid: %d %v", code, out)
	}
	code, out = do(t, s, "POST", "/indexes/books/documents", "k", []any{map[string]any{"id": "bad id!"}})
	uid = int(out["taskUid"].(float64))
	if _, task := do(t, s, "GET", "/tasks/"+itoa(uid), "k", nil); task["status"] != "failed" || task["error"].(map[string]any)["code"] != "invalid_document_id" {
		t.Errorf("invalid document id task: %v", task)
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// TestParseQuery checks the query syntax the fake models after Meilisearch: phrases in
// quotes, the negative operator of 1.8+ ("-word", "-\"a phrase\"", only at the start of
// the query or after a space), and the last word as a prefix unless a separator follows.
func TestParseQuery(t *testing.T) {
	for _, tc := range []struct {
		q     string
		words string // term, "*" after a prefix, "#n" for phrase n
		negs  string
	}{
		{"harry potter", "harry potter*", ""},
		{"harry potter ", "harry potter", ""},
		{"hobb.", "hobb", ""},
		{`"brief history" time`, "brief#1 history#1 time*", ""},
		{"-harry potter", "potter*", "[harry]"},
		{"harry -potter", "harry", "[potter]"},
		{"harry-potter", "harry potter*", ""},
		{"saint-exupéry -prince", "saint exupery", "[prince]"},
		{`harry -"chamber of secrets"`, "harry", "[chamber of secrets]"},
		{"harry - potter", "harry potter*", ""},
		{"ＨＯＢＢＩＴ", "hobbit*", ""},
	} {
		words, negs := parseQuery(tc.q)
		var ws []string
		for _, w := range words {
			s := w.term
			if w.phrase > 0 {
				s += "#" + itoa(w.phrase)
			}
			if w.prefix {
				s += "*"
			}
			ws = append(ws, s)
		}
		var ns []string
		for _, n := range negs {
			ns = append(ns, "["+strings.Join(n, " ")+"]")
		}
		if got := strings.Join(ws, " "); got != tc.words {
			t.Errorf("%q: words %q, want %q", tc.q, got, tc.words)
		}
		if got := strings.Join(ns, " "); got != tc.negs {
			t.Errorf("%q: negations %q, want %q", tc.q, got, tc.negs)
		}
	}
}

// TestNegativeSearch checks that a negated word excludes the documents having it.
func TestNegativeSearch(t *testing.T) {
	s := NewServer("k")
	defer s.Close()
	_, out := do(t, s, "POST", "/indexes", "k", map[string]any{"uid": "books", "primaryKey": "id"})
	do(t, s, "GET", "/tasks/"+itoa(int(out["taskUid"].(float64))), "k", nil)
	_, out = do(t, s, "POST", "/indexes/books/documents", "k", []any{
		map[string]any{"id": "1", "title": "Harry Potter and the Chamber of Secrets"},
		map[string]any{"id": "2", "title": "Harry Potter and the Philosopher's Stone"},
		map[string]any{"id": "3", "title": "Harry and the Hendersons"},
	})
	do(t, s, "GET", "/tasks/"+itoa(int(out["taskUid"].(float64))), "k", nil)
	for _, tc := range []struct {
		q    string
		want int
	}{
		{"harry", 3},
		{"harry -potter", 1},
		{"-potter", 1},
		{`harry -"chamber of secrets"`, 2},
		{"harry -chamb", 3}, // no prefix in a negation
		{"harry -chamber", 2},
	} {
		_, res := do(t, s, "POST", "/indexes/books/search", "k", map[string]any{"q": tc.q})
		if n := int(res["estimatedTotalHits"].(float64)); n != tc.want {
			t.Errorf("%q: %d hits, want %d", tc.q, n, tc.want)
		}
	}
}

// TestSwapIndexes: /swap-indexes as documented — the request's shape is refused at once,
// missing indexes fail the task and swap nothing (all pairs or none), and a swap
// exchanges documents and settings under the same names; rename moves an index to a
// free name (1.18+).
func TestSwapIndexes(t *testing.T) {
	s := NewServer("k", WithSwapRename())
	defer s.Close()
	run := func(method, path string, body any) map[string]any {
		t.Helper()
		code, out := do(t, s, method, path, "k", body)
		if code != 202 {
			t.Fatalf("%s %s: %d %v", method, path, code, out)
		}
		_, task := do(t, s, "GET", "/tasks/"+itoa(int(out["taskUid"].(float64))), "k", nil)
		return task
	}
	for _, uid := range []string{"a", "b", "c"} {
		run("POST", "/indexes", map[string]any{"uid": uid, "primaryKey": "id"})
		run("POST", "/indexes/"+uid+"/documents", []any{map[string]any{"id": "doc", "from": uid}})
	}
	run("PATCH", "/indexes/b/settings", map[string]any{"filterableAttributes": []string{"from"}})
	from := func(uid string) any {
		t.Helper()
		code, d := do(t, s, "GET", "/indexes/"+uid+"/documents/doc", "k", nil)
		if code != 200 {
			t.Fatalf("get %s/doc: %d %v", uid, code, d)
		}
		return d["from"]
	}

	for _, tc := range []struct {
		name string
		body any
		code string
	}{
		{"one index", []any{map[string]any{"indexes": []string{"a"}}}, "invalid_swap_indexes"},
		{"three indexes", []any{map[string]any{"indexes": []string{"a", "b", "c"}}}, "invalid_swap_indexes"},
		{"an index twice", []any{map[string]any{"indexes": []string{"a", "b"}}, map[string]any{"indexes": []string{"b", "c"}}}, "invalid_swap_duplicate_index_found"},
		{"unknown field", []any{map[string]any{"indexes": []string{"a", "b"}, "atomic": true}}, "invalid_swap_indexes"},
		{"no indexes", []any{map[string]any{}}, "missing_swap_indexes"},
	} {
		if code, out := do(t, s, "POST", "/swap-indexes", "k", tc.body); code != 400 || out["code"] != tc.code {
			t.Errorf("%s: %d %v, want 400 %s", tc.name, code, out, tc.code)
		}
	}

	// A missing index fails the whole task: the valid pair is not swapped either.
	task := run("POST", "/swap-indexes", []any{map[string]any{"indexes": []string{"a", "b"}}, map[string]any{"indexes": []string{"c", "nope"}}})
	if task["status"] != "failed" || task["error"].(map[string]any)["code"] != "index_not_found" || task["type"] != "indexSwap" || task["indexUid"] != nil {
		t.Errorf("swap with a missing index: %v", task)
	}
	if from("a") != "a" || from("b") != "b" {
		t.Errorf("a failed swap swapped: a has %v, b has %v", from("a"), from("b"))
	}

	task = run("POST", "/swap-indexes", []any{map[string]any{"indexes": []string{"a", "b"}, "rename": false}})
	if task["status"] != "succeeded" {
		t.Fatalf("swap: %v", task)
	}
	if from("a") != "b" || from("b") != "a" {
		t.Errorf("after the swap a has %v, b has %v", from("a"), from("b"))
	}
	if code, st := do(t, s, "GET", "/indexes/a/settings", "k", nil); code != 200 || len(st["filterableAttributes"].([]any)) != 1 {
		t.Errorf("settings did not move with the documents: %v", st)
	}
	if code, ix := do(t, s, "GET", "/indexes/a", "k", nil); code != 200 || ix["uid"] != "a" {
		t.Errorf("swapped index a answers as %v", ix)
	}

	if task := run("POST", "/swap-indexes", []any{map[string]any{"indexes": []string{"c", "a"}, "rename": true}}); task["status"] != "failed" || task["error"].(map[string]any)["code"] != "index_already_exists" {
		t.Errorf("rename onto an existing index: %v", task)
	}
	if task := run("POST", "/swap-indexes", []any{map[string]any{"indexes": []string{"c", "d"}, "rename": true}}); task["status"] != "succeeded" {
		t.Fatalf("rename: %v", task)
	}
	if from("d") != "c" {
		t.Errorf("renamed index d has %v", from("d"))
	}
	if code, _ := do(t, s, "GET", "/indexes/c", "k", nil); code != 404 {
		t.Errorf("index c still exists after its rename: %d", code)
	}
}

// TestSwapIndexesBefore118: a fake of an older Meilisearch refuses "rename" (false
// included) as an unknown field, as 1.4 to 1.17 do, and swaps a plain pair.
func TestSwapIndexesBefore118(t *testing.T) {
	s := NewServer("k")
	defer s.Close()
	for _, uid := range []string{"a", "b"} {
		code, out := do(t, s, "POST", "/indexes", "k", map[string]any{"uid": uid, "primaryKey": "id"})
		if code != 202 {
			t.Fatalf("create %s: %d %v", uid, code, out)
		}
	}
	for _, rename := range []bool{false, true} {
		code, out := do(t, s, "POST", "/swap-indexes", "k", []any{map[string]any{"indexes": []string{"a", "b"}, "rename": rename}})
		if code != 400 || out["code"] != "bad_request" || !strings.Contains(out["message"].(string), "`rename`") {
			t.Errorf("rename %v: %d %v, want 400 bad_request naming rename", rename, code, out)
		}
	}
	code, out := do(t, s, "POST", "/swap-indexes", "k", []any{map[string]any{"indexes": []string{"a", "b"}}})
	if code != 202 {
		t.Fatalf("plain swap: %d %v", code, out)
	}
	_, task := do(t, s, "GET", "/tasks/"+itoa(int(out["taskUid"].(float64))), "k", nil)
	if task["status"] != "succeeded" {
		t.Errorf("plain swap: %v", task)
	}
}
