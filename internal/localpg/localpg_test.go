package localpg

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestAvailable(t *testing.T) {
	if err := Available(); err != nil {
		t.Fatal(err)
	}
}

func TestStartStop(t *testing.T) {
	ctx := context.Background()
	s, err := Start(ctx, Options{Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop() })

	if !strings.HasPrefix(s.URL(), "postgres://postgres@127.0.0.1:") {
		t.Errorf("URL() = %q", s.URL())
	}
	conn := connect(t, s.URL())
	settings := map[string]string{
		"fsync":              "off",
		"synchronous_commit": "off",
		"full_page_writes":   "off",
		"listen_addresses":   "127.0.0.1",
		"max_connections":    "300",
		"is_superuser":       "on",
		"server_encoding":    "UTF8",
	}
	for name, want := range settings {
		var got string
		if err := conn.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	conn.Close(ctx)

	for range 2 { // the second call finds the database
		u, err := s.CreateDatabase(ctx, "shop")
		if err != nil {
			t.Fatal(err)
		}
		c := connect(t, u)
		var db string
		if err := c.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil {
			t.Fatal(err)
		}
		if db != "shop" {
			t.Errorf("current_database() = %q via %s", db, u)
		}
		c.Close(ctx)

		// The same database over the Unix socket: no server address.
		su := s.SocketURL(u)
		if su == u {
			t.Fatalf("SocketURL(%s) is the TCP URL (socket directory %q)", u, s.socket)
		}
		c = connect(t, su)
		var addr *string
		if err := c.QueryRow(ctx, "SELECT current_database(), host(inet_server_addr())").Scan(&db, &addr); err != nil {
			t.Fatal(err)
		}
		if db != "shop" || addr != nil {
			t.Errorf("via %s: database %q, server address %v (want shop over a socket)", su, db, addr)
		}
		c.Close(ctx)
	}

	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	assertClosed(t, s.port)
	if _, err := os.Stat(s.temp); !os.IsNotExist(err) {
		t.Errorf("temporary directory %s still exists (%v)", s.temp, err)
	}
}

func TestPersistentDataDir(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(reachableTempDir(t), "data", "postgres")

	s, err := Start(ctx, Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	u, err := s.CreateDatabase(ctx, "keep")
	if err != nil {
		s.Stop()
		t.Fatal(err)
	}
	c := connect(t, u)
	if _, err := c.Exec(ctx, "CREATE TABLE t (v text); INSERT INTO t VALUES ('kept')"); err != nil {
		t.Fatal(err)
	}
	c.Close(ctx)
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	assertClosed(t, s.port)
	if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); err != nil {
		t.Fatalf("the data directory did not survive Stop: %v", err)
	}

	// A postmaster.pid naming a dead process, then one naming a live unrelated process
	// (a reused pid after a crash), must not stop the cluster from starting.
	sleep := exec.Command("sleep", "60")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleep.Process.Kill(); sleep.Wait() })
	for _, pid := range []int{deadPID(t), sleep.Process.Pid} {
		stale := strconv.Itoa(pid) + "\n" + dir + "\n1700000000\n5432\n/tmp\n127.0.0.1\n  5432001  0\nready\n"
		if err := os.WriteFile(filepath.Join(dir, "postmaster.pid"), []byte(stale), 0o600); err != nil {
			t.Fatal(err)
		}
		s, err = Start(ctx, Options{DataDir: dir})
		if err != nil {
			t.Fatalf("restart with a stale postmaster.pid (pid %d): %v", pid, err)
		}
		u, err = s.CreateDatabase(ctx, "keep")
		if err != nil {
			s.Stop()
			t.Fatal(err)
		}
		c = connect(t, u)
		var v string
		if err := c.QueryRow(ctx, "SELECT v FROM t").Scan(&v); err != nil || v != "kept" {
			t.Errorf("after restart: v = %q, %v", v, err)
		}
		c.Close(ctx)
		if err := s.Stop(); err != nil {
			t.Fatal(err)
		}
	}
}

// A first start interrupted during initdb (Ctrl-C) must not leave a half-made cluster
// that later starts trip over.
func TestPersistentDataDirInterruptedInit(t *testing.T) {
	dir := filepath.Join(reachableTempDir(t), "postgres")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if s, err := Start(ctx, Options{DataDir: dir}); err == nil {
		s.Stop() // the machine was faster than the timeout
	}
	s, err := Start(context.Background(), Options{DataDir: dir})
	if err != nil {
		t.Fatalf("start after an interrupted first start: %v", err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir + ".initdb"); !os.IsNotExist(err) {
		t.Errorf("staging directory left behind (%v)", err)
	}
}

func TestPersistentDataDirNotEmpty(t *testing.T) {
	dir := reachableTempDir(t)
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Start(context.Background(), Options{DataDir: dir})
	if err == nil || !strings.Contains(err.Error(), "neither empty nor a PostgreSQL data directory") {
		t.Fatalf("Start on a foreign directory: %v", err)
	}
}

func TestStartFailureShowsLog(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	s, err := Start(context.Background(), Options{Fast: true, Port: port})
	if err == nil {
		s.Stop()
		t.Fatalf("Start on busy port %d succeeded", port)
	}
	if !strings.Contains(err.Error(), "server log") || !strings.Contains(err.Error(), "already in use") {
		t.Errorf("error does not show the server log: %v", err)
	}
}

func TestCanEnter(t *testing.T) {
	locked := filepath.Join(reachableTempDir(t), "locked")
	if err := os.Mkdir(locked, 0o700); err != nil {
		t.Fatal(err)
	}
	other := &account{name: "other", uid: uint32(os.Getuid()) + 4242, gid: uint32(os.Getgid()) + 4242}
	err := other.canEnter(filepath.Join(locked, "data"))
	if err == nil || !strings.Contains(err.Error(), "cannot enter "+locked) {
		t.Errorf("canEnter below a 0700 directory of another user: %v", err)
	}
	if err := os.Chmod(locked, 0o711); err != nil {
		t.Fatal(err)
	}
	if err := other.canEnter(locked); err != nil {
		t.Errorf("canEnter with o+x: %v", err)
	}
}

func TestVersionLess(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"9.6", "15", true},
		{"15", "16", true},
		{"16", "15", false},
		{"15", "15", false},
		{"10", "9.6", false},
	} {
		if got := versionLess(c.a, c.b); got != c.want {
			t.Errorf("versionLess(%q, %q) = %v", c.a, c.b, got)
		}
	}
}

func connect(t *testing.T, u string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatalf("connect %s: %v", u, err)
	}
	return c
}

func assertClosed(t *testing.T, port int) {
	t.Helper()
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
	if err == nil {
		c.Close()
		t.Errorf("port %d still accepts connections after Stop", port)
	}
}

// reachableTempDir is a temporary directory that the postgres user can enter when the
// tests run as root (t.TempDir's parent is private to the current user).
func reachableTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "localpg-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func deadPID(t *testing.T) int {
	t.Helper()
	c := exec.Command("true")
	if err := c.Run(); err != nil {
		t.Fatal(err)
	}
	return c.Process.Pid
}
