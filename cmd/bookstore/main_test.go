package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shopfront/bookstore/internal/testdb"
	"github.com/shopfront/bookstore/pii"
	"github.com/shopfront/bookstore/search/meili/meilitest"
)

func TestMain(m *testing.M) { testdb.Main(m) }

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// withKeys adds fresh key variables (as `bookstore keys generate` prints them) to vars.
func withKeys(t *testing.T, vars map[string]string) map[string]string {
	t.Helper()
	var out bytes.Buffer
	if err := run(context.Background(), []string{"keys", "generate"}, env(nil), &out, &out); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("keys generate printed %q", line)
		}
		vars[k] = v
	}
	// Cheap argon2id, through the ordinary configuration: production cost would dominate
	// the tests' run time.
	vars["ARGON2_MEMORY_KIB"], vars["ARGON2_ITERATIONS"], vars["ARGON2_PARALLELISM"] = "64", "1", "1"
	return vars
}

func scalar(t *testing.T, url, q string) int {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(), q).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestImportReportsBadRowsAndIsIdempotent(t *testing.T) {
	url := testdb.NewURL(t)
	csv := strings.Join([]string{
		"isbn,title,authors,price_cents,categories,description,rating,stock,book_id,extra",
		`9780306406157,"Good, with comma",Ann Lee|Bo Chan,1999,Fiction > Fantasy,"Two
lines",4.5,10,,ignored`,
		"0-19-853453-1,ISBN-10 row,Cy Doe,500,History,,3,0,,",
		"9780306406158,Bad check digit,Cy Doe,500,History,,3,0,,",
		"9781861972712,Negative price,Cy Doe,-1,History,,3,0,,",
		"9781861972712,Rating too high,Cy Doe,100,History,,9,0,,",
		"9781402894626,No authors,,100,History,,3,0,,",
		"9780131103627,Bad uuid,Dee,100,History,,3,0,not-a-uuid,",
		"9780131103627,Last good row,Dee,100,History,,3,5,,",
	}, "\n") + "\n"
	file := filepath.Join(t.TempDir(), "books.csv")
	if err := os.WriteFile(file, []byte(csv), 0o644); err != nil {
		t.Fatal(err)
	}
	for round := 1; round <= 2; round++ {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), []string{"import", file}, env(map[string]string{"DATABASE_URL": url}), &stdout, &stderr)
		if err == nil {
			t.Fatal("import with bad rows exited successfully")
		}
		for _, line := range []string{"line 5", "line 6", "line 7", "line 8", "line 9"} {
			if !strings.Contains(stderr.String(), line) {
				t.Errorf("round %d: no report for %s in:\n%s", round, line, stderr.String())
			}
		}
		for _, line := range []string{"line 2", "line 4", "line 10"} {
			if strings.Contains(stderr.String(), line+":") {
				t.Errorf("round %d: good row reported: %s", round, stderr.String())
			}
		}
		if !strings.Contains(stdout.String(), "imported 3 books") {
			t.Errorf("round %d: stdout = %q", round, stdout.String())
		}
		if n := scalar(t, url, "SELECT count(*) FROM books"); n != 3 {
			t.Fatalf("round %d: %d books, want 3", round, n)
		}
		if n := scalar(t, url, "SELECT count(*) FROM book_authors"); n != 4 {
			t.Fatalf("round %d: %d author links, want 4", round, n)
		}
	}
	if n := scalar(t, url, "SELECT count(*) FROM books WHERE isbn = '9780306406157' AND description = 'Two\nlines'"); n != 1 {
		t.Fatal("the quoted multi-line description was not loaded as written")
	}
	if n := scalar(t, url, "SELECT count(*) FROM books WHERE isbn = '9780198534532'"); n != 1 {
		t.Fatal("the ISBN-10 row was not stored under its ISBN-13")
	}
}

func TestServeShutsDownCleanly(t *testing.T) {
	url := testdb.NewURL(t)
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--addr", addr}, env(testPayments(withKeys(t, map[string]string{"DATABASE_URL": url}))), &stdout, &bytes.Buffer{})
	}()
	var resp *http.Response
	var err error
	for i := 0; i < 100; i++ {
		if resp, err = http.Get(fmt.Sprintf("http://%s/readyz", addr)); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("server never answered: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/readyz = %d", resp.StatusCode)
	}
	cancel() // what SIGTERM does in main
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve returned %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop")
	}
	if !strings.Contains(stdout.String(), `"msg":"stopped"`) || !strings.Contains(stdout.String(), `"msg":"request"`) {
		t.Fatalf("log lacks the request and shutdown lines:\n%s", stdout.String())
	}
}

func TestUnknownCommandAndMissingDatabase(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"frobnicate"}, env(nil), &out, &out); err == nil {
		t.Fatal("unknown command accepted")
	}
	err := run(context.Background(), []string{"serve"}, env(nil), &out, &out)
	if err == nil || !strings.Contains(err.Error(), "DATABASE_URL") {
		t.Fatalf("serve without a database: %v", err)
	}
}

func TestServeRefusesToStartWithoutKeys(t *testing.T) {
	url := testdb.NewURL(t)
	var out bytes.Buffer
	err := run(context.Background(), []string{"serve", "--addr", "127.0.0.1:0"}, env(testPayments(map[string]string{"DATABASE_URL": url})), &out, &out)
	if err == nil || !strings.Contains(err.Error(), "JWT_KEYS") || !strings.Contains(err.Error(), "PII_MASTER_KEYS") {
		t.Fatalf("serve without keys: %v", err)
	}
}

// TestServeRefusesALongAccessTokenTTL: an access token is a bearer secret checked against
// the revocation set; its lifetime is capped at start-up, and one under a minute (which
// expires before a client can use it) is refused too.
func TestServeRefusesALongAccessTokenTTL(t *testing.T) {
	url := testdb.NewURL(t)
	for _, ttl := range []string{"2h", "30s", "0s"} {
		var out bytes.Buffer
		vars := testPayments(withKeys(t, map[string]string{"DATABASE_URL": url, "ACCESS_TOKEN_TTL": ttl}))
		err := run(context.Background(), []string{"serve", "--addr", "127.0.0.1:0"}, env(vars), &out, &out)
		if err == nil || !strings.Contains(err.Error(), "ACCESS_TOKEN_TTL") {
			t.Fatalf("serve with a %s access-token TTL: %v", ttl, err)
		}
	}
}

// TestAdminCreate: the CLI makes an ADMIN account whose password works, and running it
// again for the same email promotes rather than failing.
func TestAdminCreate(t *testing.T) {
	url := testdb.NewURL(t)
	vars := withKeys(t, map[string]string{"DATABASE_URL": url, "ADMIN_PASSWORD": "quiet lanterns over the harbour"})
	var out bytes.Buffer
	for range 2 {
		out.Reset()
		if err := run(context.Background(), []string{"admin", "create", "--email", "Boss@Example.com", "--name", "Boss"}, env(vars), &out, &out); err != nil {
			t.Fatalf("admin create: %v\n%s", err, out.String())
		}
		if !strings.Contains(strings.ToLower(out.String()), "boss@example.com is an admin") {
			t.Fatalf("output: %s", out.String())
		}
	}
	if n := scalar(t, url, `SELECT count(*) FROM customers WHERE role = 'ADMIN'`); n != 1 {
		t.Fatalf("%d admins, want 1", n)
	}
	// An account someone else registered (anyone can, through the API) is not promoted on
	// its email alone: the operator must know its password.
	squat := maps.Clone(vars)
	squat["ADMIN_PASSWORD"] = "mallory registered this first"
	if err := run(context.Background(), []string{"admin", "create", "--email", "boss@example.com"}, env(squat), &out, &out); err == nil ||
		!strings.Contains(err.Error(), "refusing to promote") {
		t.Fatalf("admin create with another password for an existing account: %v", err)
	}
	bad := withKeys(t, map[string]string{"DATABASE_URL": url, "ADMIN_PASSWORD": "short"})
	if err := run(context.Background(), []string{"admin", "create", "--email", "x@example.com"}, env(bad), &out, &out); err == nil {
		t.Fatal("a too-short admin password was accepted")
	}
}

// TestServeWithMeilisearch runs the real commands against the Meilisearch contract fake:
// `serve` fills an empty index from the database at start and answers search through
// it; `reindex` rebuilds it.
func TestServeWithMeilisearch(t *testing.T) {
	url := testdb.NewURL(t)
	fake := meilitest.NewServer("test-master-key")
	t.Cleanup(fake.Close)
	var out bytes.Buffer
	vars := testPayments(withKeys(t, map[string]string{"DATABASE_URL": url, "MEILI_URL": fake.URL, "MEILI_KEY": "test-master-key"}))
	if err := run(context.Background(), []string{"seed", "--books", "40"}, env(vars), &out, &out); err != nil {
		t.Fatalf("seed: %v\n%s", err, out.String())
	}
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--addr", addr}, env(vars), &bytes.Buffer{}, &bytes.Buffer{})
	}()
	t.Cleanup(func() { cancel(); <-done })
	var body []byte
	for i := 0; i < 200; i++ {
		resp, err := http.Post("http://"+addr+"/graphql", "application/json",
			strings.NewReader(`{"query":"{ search(query: \"\", first: 3) { totalCount edges { node { title } } } }"}`))
		if err == nil {
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(string(body), `"totalCount":40`) {
		t.Fatalf("search through Meilisearch: %s", body)
	}
	if fake.Calls("POST /indexes/:uid/documents") == 0 {
		t.Fatal("serve never pushed documents to Meilisearch")
	}
	out.Reset()
	if err := run(context.Background(), []string{"reindex"}, env(vars), &out, &out); err != nil || !strings.Contains(out.String(), "reindexed 40 books") {
		t.Fatalf("reindex: %v\n%s", err, out.String())
	}
	// Books deleted by SQL behind the server's back: `reindex` swaps in an index of
	// exactly the database's books, which the running server serves at once.
	if n := scalar(t, url, `WITH d AS (DELETE FROM books WHERE id IN (SELECT id FROM books ORDER BY id LIMIT 3) RETURNING 1) SELECT count(*) FROM d`); n != 3 {
		t.Fatalf("deleted %d books", n)
	}
	swaps := fake.Calls("POST /swap-indexes")
	out.Reset()
	if err := run(context.Background(), []string{"reindex"}, env(vars), &out, &out); err != nil || !strings.Contains(out.String(), "reindexed 37 books") {
		t.Fatalf("reindex after deletes: %v\n%s", err, out.String())
	}
	if fake.Calls("POST /swap-indexes") != swaps+1 {
		t.Errorf("reindex did not swap a fresh index in")
	}
	resp, err := http.Post("http://"+addr+"/graphql", "application/json",
		strings.NewReader(`{"query":"{ search(query: \"\", first: 100) { totalCount edges { node { title } } } }"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"totalCount":37`) || strings.Count(string(body), `"title"`) != 37 {
		t.Errorf("search after reindex: %s", body)
	}
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestKeysRotate: after `keys rotate` under a new PII master key, the old key can be
// dropped and every account still decrypts; before the rotation it could not.
func TestKeysRotate(t *testing.T) {
	url := testdb.NewURL(t)
	vars := withKeys(t, map[string]string{"DATABASE_URL": url, "ADMIN_PASSWORD": "quiet lanterns over the harbour"})
	var out bytes.Buffer
	admin := func(v map[string]string) error {
		out.Reset()
		return run(context.Background(), []string{"admin", "create", "--email", "keeper@example.com"}, env(v), &out, &out)
	}
	if err := admin(vars); err != nil {
		t.Fatalf("admin create: %v\n%s", err, out.String())
	}
	key, err := pii.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	newKey := pii.FormatKey("pii-next", key)
	onlyNew := maps.Clone(vars)
	onlyNew["PII_MASTER_KEYS"] = newKey
	if err := admin(onlyNew); err == nil {
		t.Fatal("the account decrypted under a key that never wrapped it: the test proves nothing")
	}
	both := maps.Clone(vars)
	both["PII_MASTER_KEYS"] = newKey + "," + vars["PII_MASTER_KEYS"]
	out.Reset()
	if err := run(context.Background(), []string{"keys", "rotate"}, env(both), &out, &out); err != nil || !strings.Contains(out.String(), "re-wrapped") {
		t.Fatalf("keys rotate: %v\n%s", err, out.String())
	}
	if err := admin(onlyNew); err != nil {
		t.Fatalf("after rotation the new key alone cannot read the account: %v\n%s", err, out.String())
	}
}
