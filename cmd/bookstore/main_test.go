package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shopfront/bookstore/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--addr", addr}, env(map[string]string{"DATABASE_URL": url}), &stdout, &bytes.Buffer{})
	}()
	var resp *http.Response
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
