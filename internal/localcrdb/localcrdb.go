// Package localcrdb runs a private single-node CockroachDB (`cockroach
// start-single-node --insecure`) on free loopback ports, for development and tests, from
// a cockroach binary on PATH.
package localcrdb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Options configure Start.
type Options struct {
	// DataDir holds the node's store. Empty means a temporary directory removed by Stop;
	// otherwise the store is created on first use and reused afterwards.
	DataDir string
}

// Server is a running CockroachDB node.
type Server struct {
	url     string
	temp    string // removed by Stop, if set
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
	logFile *os.File

	stopOnce sync.Once
	stopErr  error
}

const (
	startTimeout = 3 * time.Minute
	stopTimeout  = time.Minute
)

// Available reports whether a cockroach binary is on PATH.
func Available() error {
	_, err := exec.LookPath("cockroach")
	if err != nil {
		return errors.New("localcrdb: no cockroach binary on PATH (CockroachDB is not packaged by Debian; put its release binary on PATH)")
	}
	return nil
}

// Start starts a single-node insecure CockroachDB listening on 127.0.0.1 only (SQL and
// the DB console on free ports) and waits until it accepts SQL. The node runs in its own
// process group (a terminal's Ctrl-C reaches only this program, which should call Stop)
// and is told to shut down should this process die. ctx bounds the start only.
func Start(ctx context.Context, opts Options) (*Server, error) {
	bin, err := exec.LookPath("cockroach")
	if err != nil {
		return nil, Available()
	}
	s := &Server{}
	var dir string
	if opts.DataDir == "" {
		if dir, err = os.MkdirTemp("", "localcrdb-"); err != nil {
			return nil, err
		}
		s.temp = dir
	} else {
		if dir, err = filepath.Abs(opts.DataDir); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
	}
	store := filepath.Join(dir, "store")
	urlFile := filepath.Join(dir, "listening-url")
	s.logPath = filepath.Join(dir, "cockroach.log")

	for attempt := 0; ; attempt++ {
		var sqlPort, httpPort int
		if sqlPort, err = freePort(); err == nil {
			httpPort, err = freePort()
		}
		if err != nil {
			break
		}
		err = s.launch(ctx, bin, store, urlFile, sqlPort, httpPort)
		if err == nil || attempt >= 4 || !errors.Is(err, errPortInUse) {
			break
		}
	}
	if err != nil {
		if s.temp != "" {
			os.RemoveAll(s.temp)
		}
		return nil, err
	}
	return s, nil
}

// URL is a postgresql:// URL of the root user connected to defaultdb.
func (s *Server) URL() string { return s.url }

// CreateDatabase creates the database unless it exists and returns its URL.
func (s *Server) CreateDatabase(ctx context.Context, name string) (string, error) {
	conn, err := pgx.Connect(ctx, s.url)
	if err != nil {
		return "", fmt.Errorf("localcrdb: connect: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("localcrdb: create database %s: %w", name, err)
	}
	u, _ := url.Parse(s.url)
	u.Path = "/" + name
	return u.String(), nil
}

// Stop drains and stops the node, waits for it and removes a temporary directory.
// Calling it again returns the first call's result.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() { s.stopErr = s.stop() })
	return s.stopErr
}

func (s *Server) stop() error {
	var errs []error
	select {
	case <-s.exited:
		errs = append(errs, fmt.Errorf("localcrdb: the node had already exited: %v", s.waitErr))
	default:
		_ = s.cmd.Process.Signal(syscall.SIGTERM) // graceful drain and shutdown
		select {
		case <-s.exited:
		case <-time.After(stopTimeout):
			_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			<-s.exited
			errs = append(errs, fmt.Errorf("localcrdb: the node did not shut down within %v", stopTimeout))
		}
	}
	s.logFile.Close()
	if s.temp != "" {
		if err := os.RemoveAll(s.temp); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

var errPortInUse = errors.New("port in use")

func (s *Server) launch(ctx context.Context, bin, store, urlFile string, sqlPort, httpPort int) error {
	_ = os.Remove(urlFile) // a previous run's: we wait for this run's
	f, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, "start-single-node",
		"--insecure",
		"--listen-addr="+net.JoinHostPort("127.0.0.1", strconv.Itoa(sqlPort)),
		"--http-addr="+net.JoinHostPort("127.0.0.1", strconv.Itoa(httpPort)),
		"--store=path="+store,
		"--listening-url-file="+urlFile,
	)
	cmd.Dir = filepath.Dir(store)
	cmd.Env = withoutCockroachEnv(os.Environ())
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = sysProcAttr()
	exited := make(chan struct{})
	started := make(chan error, 1)
	// The parent-death signal follows the thread that forked: keep that thread for the
	// node's whole life.
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		s.waitErr = cmd.Wait()
		close(exited)
	}()
	if err := <-started; err != nil {
		f.Close()
		return fmt.Errorf("localcrdb: start %s: %w", bin, err)
	}
	s.cmd, s.exited, s.logFile = cmd, exited, f

	err = s.waitReady(ctx, urlFile)
	if err == nil {
		return nil
	}
	select {
	case <-exited:
	default:
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
	f.Close()
	log, _ := os.ReadFile(s.logPath)
	if bytes.Contains(log, []byte("address already in use")) {
		err = fmt.Errorf("%w: %w", errPortInUse, err)
	}
	return fmt.Errorf("%w\nnode output (%s; full logs in %s):\n%s", err, s.logPath, filepath.Join(store, "logs"), tail(log))
}

// waitReady waits for the node to write its SQL URL to urlFile (it does once it
// listens) and to answer a query.
func (s *Server) waitReady(ctx context.Context, urlFile string) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	var last error
	for {
		select {
		case <-s.exited:
			return fmt.Errorf("localcrdb: cockroach exited during start-up: %v", s.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("localcrdb: cockroach did not accept SQL connections: %w (last error: %v)", ctx.Err(), last)
		default:
		}
		var u string
		if b, err := os.ReadFile(urlFile); err != nil || len(bytes.TrimSpace(b)) == 0 {
			last = fmt.Errorf("no URL in %s yet", urlFile)
		} else {
			u, last = sqlURL(string(bytes.TrimSpace(b)))
		}
		if u != "" {
			cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
			var conn *pgx.Conn
			conn, last = pgx.Connect(cctx, u)
			if last == nil {
				_, last = conn.Exec(cctx, "SELECT 1")
				conn.Close(context.Background())
			}
			ccancel()
			if last == nil {
				s.url = u
				return nil
			}
		}
		select {
		case <-s.exited:
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// sqlURL normalises the node's listening URL (postgresql://root@127.0.0.1:PORT/defaultdb?sslmode=disable).
func sqlURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("localcrdb: listening URL %q: %w", raw, err)
	}
	if u.User == nil {
		u.User = url.User("root")
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/defaultdb"
	}
	q := u.Query()
	if q.Get("sslmode") == "" {
		q.Set("sslmode", "disable")
		u.RawQuery = q.Encode()
	}
	return u.String(), nil
}

// withoutCockroachEnv drops COCKROACH_* variables, which would override our flags.
func withoutCockroachEnv(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, "COCKROACH_") {
			out = append(out, kv)
		}
	}
	return out
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(b []byte) string {
	const max = 4096
	if len(b) > max {
		b = b[len(b)-max:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return strings.TrimRight(string(b), "\n")
}
