package localcrdb

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/shopfront/bookstore/internal/localpg"
)

// No cockroach binary can be installed on our machines, so this drives Start and Stop
// through a stand-in that checks the flags, answers SQL through a real PostgreSQL and
// writes its URL where CockroachDB would.
func TestStartStopWithStandIn(t *testing.T) {
	ctx := context.Background()
	pg, err := localpg.Start(ctx, localpg.Options{Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Stop() })

	bin := t.TempDir()
	argsFile := filepath.Join(bin, "args")
	script := `#!/bin/sh
printf '%s\n' "$@" > ` + argsFile + `
for a in "$@"; do
	case "$a" in --listening-url-file=*) f="${a#--listening-url-file=}" ;; esac
done
echo '` + pg.URL() + `' > "$f.tmp" && mv "$f.tmp" "$f"
trap 'exit 0' TERM
while :; do sleep 0.1; done
`
	if err := os.WriteFile(filepath.Join(bin, "cockroach"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))

	if err := Available(); err != nil {
		t.Fatal(err)
	}
	s, err := Start(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s.URL() != pg.URL() {
		t.Errorf("URL() = %q, want %q", s.URL(), pg.URL())
	}
	b, err := os.ReadFile(argsFile)
	if err != nil {
		t.Fatal(err)
	}
	args := strings.Split(strings.TrimSpace(string(b)), "\n")
	for i, prefix := range []string{
		"start-single-node",
		"--insecure",
		"--listen-addr=127.0.0.1:",
		"--http-addr=127.0.0.1:",
		"--store=path=" + s.temp + "/",
		"--listening-url-file=" + s.temp + "/",
	} {
		if i >= len(args) || !strings.HasPrefix(args[i], prefix) {
			t.Errorf("argument %d: %q, want prefix %q (all: %q)", i, args, prefix, args)
		}
	}
	pid := s.cmd.Process.Pid
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("the node (pid %d) still runs after Stop", pid)
	}
	if _, err := os.Stat(s.temp); !os.IsNotExist(err) {
		t.Errorf("temporary directory %s still exists (%v)", s.temp, err)
	}
}

func TestNoBinary(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	if _, err := Start(context.Background(), Options{}); err == nil || !strings.Contains(err.Error(), "no cockroach binary on PATH") {
		t.Fatalf("Start without cockroach: %v", err)
	}
}

func TestSQLURL(t *testing.T) {
	for in, want := range map[string]string{
		"postgresql://root@127.0.0.1:26257/defaultdb?sslmode=disable": "postgresql://root@127.0.0.1:26257/defaultdb?sslmode=disable",
		"postgresql://127.0.0.1:26257":                                "postgresql://root@127.0.0.1:26257/defaultdb?sslmode=disable",
	} {
		got, err := sqlURL(in)
		if err != nil || got != want {
			t.Errorf("sqlURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
