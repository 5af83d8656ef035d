// Package localpg runs a private PostgreSQL server for development, tests and
// benchmarks: its own data directory, a free loopback port, trust authentication on
// loopback only, and nothing shared with a system cluster. It runs the machine's
// PostgreSQL server binaries (Debian keeps them off PATH, in /usr/lib/postgresql/N/bin).
//
// PostgreSQL refuses to run as root; when this process is root the server runs as the
// unprivileged postgres user that Debian's package creates.
package localpg

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
	"github.com/jackc/pgx/v5/pgconn"
)

// Options configure Start.
type Options struct {
	// DataDir is the cluster's directory. Empty means a fresh temporary cluster removed
	// by Stop; otherwise the cluster is created there on first use and reused afterwards.
	DataDir string
	// Fast trades durability for speed (fsync, synchronous_commit and full_page_writes
	// off): for tests and benchmarks, never for data worth keeping.
	Fast bool
	// Port is the TCP port on 127.0.0.1; 0 picks a free one.
	Port int
	// Settings are extra server settings, "name=value" each (passed as -c), e.g.
	// "shared_preload_libraries=pg_stat_statements" for the bench's statement report.
	Settings []string
}

// Server is a running PostgreSQL server.
type Server struct {
	url     string
	socket  string // the Unix socket's directory, "" when TCP only
	port    int
	temp    string // temporary directory removed by Stop, if any
	pgdata  string
	logPath string

	cmd     *exec.Cmd
	exited  chan struct{} // closed when the postmaster has exited
	waitErr error
	logFile *os.File

	stopOnce sync.Once
	stopErr  error
}

const (
	superuser    = "postgres"
	startTimeout = 2 * time.Minute
	stopTimeout  = time.Minute
)

var errPortInUse = errors.New("port in use")

// Start starts a PostgreSQL server and waits until it accepts connections. The server
// runs in its own process group (a Ctrl-C in the terminal reaches only this program,
// which should call Stop) and is told to shut down should this process die. ctx bounds
// the start only, not the server's life.
func Start(ctx context.Context, opts Options) (*Server, error) {
	dirs := binDirs()
	if len(dirs) == 0 {
		return nil, Available()
	}
	acct, err := serverAccount()
	if err != nil {
		return nil, err
	}
	s := &Server{}
	var sockDir string
	bin := dirs[0]
	if opts.DataDir == "" {
		base, err := makeTempDir(acct)
		if err != nil {
			return nil, err
		}
		s.temp = base
		s.pgdata = filepath.Join(base, "data")
		s.logPath = filepath.Join(base, "postgres.log")
		sockDir = base
		if err := initdb(ctx, bin, s.pgdata, acct, opts.Fast); err != nil {
			os.RemoveAll(base)
			return nil, err
		}
	} else {
		dir, err := filepath.Abs(opts.DataDir)
		if err != nil {
			return nil, err
		}
		s.pgdata = dir
		s.logPath = filepath.Join(dir, "localpg.log")
		sockDir = dir
		if bin, err = preparePersistent(ctx, dirs, dir, acct, opts.Fast); err != nil {
			return nil, err
		}
	}
	if len(sockDir)+len("/.s.PGSQL.65535") >= 104 || strings.ContainsAny(sockDir, ",\"' ") {
		sockDir = "" // too long for a unix socket address (or unquotable): TCP only
	}
	for attempt := 0; ; attempt++ {
		port := opts.Port
		if port == 0 {
			if port, err = freePort(); err != nil {
				break
			}
		}
		err = s.launch(ctx, bin, acct, port, sockDir, opts.Fast, opts.Settings)
		if err == nil || opts.Port != 0 || attempt >= 4 || !errors.Is(err, errPortInUse) {
			break
		}
	}
	if err != nil {
		if s.logFile != nil {
			s.logFile.Close()
		}
		if s.temp != "" {
			os.RemoveAll(s.temp)
		}
		return nil, err
	}
	return s, nil
}

// URL is a postgres:// URL of a superuser connected to the postgres database.
func (s *Server) URL() string { return s.url }

// SocketURL is u (a URL of this server's, as URL or CreateDatabase return) over the
// server's Unix socket instead of TCP, or u itself when the server has no socket (its
// directory's path is too long for one). A client on the same host spends less CPU per
// round trip on a Unix socket than on loopback TCP.
func (s *Server) SocketURL(u string) string {
	if s.socket == "" {
		return u
	}
	p, err := url.Parse(u)
	if err != nil {
		return u
	}
	q := p.Query()
	q.Set("host", s.socket)
	p.RawQuery = q.Encode()
	return p.String()
}

// PID is the postmaster's process id (its backends are its children).
func (s *Server) PID() int { return s.cmd.Process.Pid }

// CreateDatabase creates the database unless it exists and returns its URL.
func (s *Server) CreateDatabase(ctx context.Context, name string) (string, error) {
	conn, err := pgx.Connect(ctx, s.url)
	if err != nil {
		return "", fmt.Errorf("localpg: connect: %w", err)
	}
	defer conn.Close(context.Background())
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return "", fmt.Errorf("localpg: create database %s: %w", name, err)
	}
	if !exists {
		_, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
		var pgErr *pgconn.PgError
		if err != nil && !(errors.As(err, &pgErr) && pgErr.Code == "42P04") { // duplicate_database: created meanwhile
			return "", fmt.Errorf("localpg: create database %s: %w", name, err)
		}
	}
	u, _ := url.Parse(s.url)
	u.Path = "/" + name
	return u.String(), nil
}

// Stop shuts the server down (fast shutdown: open transactions are rolled back), waits
// for it to exit and removes a temporary data directory. Calling it again returns the
// first call's result.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() { s.stopErr = s.stop() })
	return s.stopErr
}

func (s *Server) stop() error {
	var errs []error
	select {
	case <-s.exited:
		errs = append(errs, fmt.Errorf("localpg: the server had already exited: %v", s.waitErr))
	default:
		_ = s.cmd.Process.Signal(syscall.SIGINT) // fast shutdown
		select {
		case <-s.exited:
		case <-time.After(stopTimeout):
			_ = s.cmd.Process.Signal(syscall.SIGQUIT) // immediate shutdown
			select {
			case <-s.exited:
			case <-time.After(10 * time.Second):
				_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
				<-s.exited
			}
			errs = append(errs, fmt.Errorf("localpg: the server did not shut down within %v", stopTimeout))
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

func makeTempDir(acct *account) (string, error) {
	parent := os.TempDir()
	if acct.canEnter(parent) != nil {
		parent = "/tmp"
		if err := acct.canEnter(parent); err != nil {
			return "", err
		}
	}
	base, err := os.MkdirTemp(parent, "localpg-")
	if err != nil {
		return "", err
	}
	if err := acct.own(base); err != nil {
		os.RemoveAll(base)
		return "", err
	}
	return base, nil
}

// preparePersistent makes dir a usable cluster directory (creating the cluster on first
// use) and returns the binaries' directory that matches its version.
func preparePersistent(ctx context.Context, dirs []string, dir string, acct *account, fast bool) (string, error) {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", err
	}
	if acct.cred != nil {
		if err := acct.canEnter(filepath.Dir(dir)); err != nil {
			return "", err
		}
	}
	version, err := os.ReadFile(filepath.Join(dir, "PG_VERSION"))
	if errors.Is(err, os.ErrNotExist) {
		if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
			return "", fmt.Errorf("localpg: %s is neither empty nor a PostgreSQL data directory: remove it or choose another", dir)
		}
		// initdb into a sibling and rename it into place, so that an interrupted first
		// start leaves no half-made cluster behind.
		staging := dir + ".initdb"
		if err := os.RemoveAll(staging); err != nil {
			return "", err
		}
		if err := os.Mkdir(staging, 0o700); err != nil {
			return "", err
		}
		if err := acct.own(staging); err != nil {
			return "", err
		}
		if err := initdb(ctx, dirs[0], staging, acct, fast); err != nil {
			os.RemoveAll(staging)
			return "", err
		}
		if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		return dirs[0], os.Rename(staging, dir)
	}
	if err != nil {
		return "", err
	}
	want := strings.TrimSpace(string(version))
	var found []string
	bin := ""
	for _, d := range dirs {
		v, err := majorVersion(d)
		if err != nil {
			continue
		}
		found = append(found, v)
		if v == want {
			bin = d
			break
		}
	}
	if bin == "" {
		return "", fmt.Errorf("localpg: %s holds a PostgreSQL %s cluster but the installed server is PostgreSQL %s: delete the directory to start over (or install postgresql-%s)", dir, want, strings.Join(found, ", "), want)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return "", err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != acct.uid {
		return "", fmt.Errorf("localpg: %s is owned by uid %d but PostgreSQL runs as %s (uid %d): delete the directory to start over, or run as its owner", dir, st.Uid, acct.name, acct.uid)
	}
	if fi.Mode().Perm()&0o027 != 0 { // PostgreSQL insists on 0700 or 0750
		if err := os.Chmod(dir, 0o700); err != nil {
			return "", err
		}
	}
	return bin, clearStalePID(dir)
}

func initdb(ctx context.Context, bin, pgdata string, acct *account, fast bool) error {
	args := []string{"-D", pgdata, "--username=" + superuser, "--auth=trust", "--encoding=UTF8", "--no-locale"}
	if fast {
		args = append(args, "--no-sync")
	}
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), args...)
	cmd.Dir = filepath.Dir(pgdata)
	if acct.cred != nil && acct.canEnter(pgdata) != nil {
		cmd.Dir = "/"
	}
	cmd.Env = serverEnv()
	cmd.SysProcAttr = sysProcAttr(acct.cred, syscall.SIGKILL)
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("localpg: initdb %s: %v\n%s", pgdata, err, tail(out.Bytes()))
	}
	return nil
}

// launch runs the postmaster on port and waits until it accepts connections.
func (s *Server) launch(ctx context.Context, bin string, acct *account, port int, sockDir string, fast bool, settings []string) error {
	f, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	_ = acct.own(s.logPath)
	args := []string{
		"-D", s.pgdata,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "port=" + strconv.Itoa(port),
		"-c", "unix_socket_directories=" + sockDir,
		"-c", "max_connections=300",
	}
	if fast {
		args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	for _, kv := range settings {
		args = append(args, "-c", kv)
	}
	cmd := exec.Command(filepath.Join(bin, "postgres"), args...)
	cmd.Dir = s.pgdata
	cmd.Env = serverEnv()
	cmd.Stdout, cmd.Stderr = f, f
	// SIGINT on our death is a fast shutdown.
	cmd.SysProcAttr = sysProcAttr(acct.cred, syscall.SIGINT)
	exited := make(chan struct{})
	if err := startLocked(cmd, func(err error) { s.waitErr = err; close(exited) }); err != nil {
		f.Close()
		return fmt.Errorf("localpg: start postgres: %w", err)
	}
	s.cmd, s.exited, s.logFile = cmd, exited, f
	s.port = port
	s.socket = sockDir
	s.url = (&url.URL{
		Scheme:   "postgres",
		User:     url.User(superuser),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Path:     "/postgres",
		RawQuery: "sslmode=disable",
	}).String()

	err = s.waitReady(ctx)
	if err == nil {
		return nil
	}
	select {
	case <-exited:
	default:
		_ = cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	}
	f.Close()
	s.logFile = nil
	log, _ := os.ReadFile(s.logPath)
	if bytes.Contains(log, []byte("could not bind")) || bytes.Contains(log, []byte("already in use")) {
		err = fmt.Errorf("%w: %w", errPortInUse, err)
	}
	where := ""
	if s.temp == "" {
		where = " (" + s.logPath + ")"
	}
	return fmt.Errorf("%w\nserver log%s:\n%s", err, where, tail(log))
}

func (s *Server) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	var last error
	for {
		select {
		case <-s.exited:
			return fmt.Errorf("localpg: postgres exited during start-up: %v", s.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("localpg: postgres did not accept connections on port %d: %w (last error: %v)", s.port, ctx.Err(), last)
		default:
		}
		cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
		go func() { // give up on the attempt as soon as the server dies
			select {
			case <-s.exited:
				ccancel()
			case <-cctx.Done():
			}
		}()
		conn, err := pgx.Connect(cctx, s.url)
		if err == nil {
			err = conn.Ping(cctx)
			conn.Close(context.Background())
		}
		ccancel()
		if err == nil {
			return nil
		}
		last = err
		select {
		case <-s.exited:
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// startLocked starts cmd from a goroutine locked to its OS thread for the process's
// whole life: the parent-death signal follows the thread that forked, and the Go runtime
// may otherwise end that thread while the server still runs.
func startLocked(cmd *exec.Cmd, exited func(error)) error {
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		exited(cmd.Wait())
	}()
	return <-started
}

// clearStalePID removes a postmaster.pid left behind by a server that no longer runs
// (after a crash or reboot, its pid may belong to an unrelated process, which PostgreSQL
// would take for a live postmaster), and shuts down an orphaned server of this directory.
func clearStalePID(pgdata string) error {
	pidFile := filepath.Join(pgdata, "postmaster.pid")
	b, err := os.ReadFile(pidFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if pid <= 0 || !alive(pid) {
		return removeIfExists(pidFile)
	}
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return nil // cannot tell: let PostgreSQL decide
	}
	if c := strings.TrimSpace(string(comm)); c != "postgres" && c != "postmaster" {
		return removeIfExists(pidFile) // the pid now belongs to another program
	}
	cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
	if err != nil {
		return nil
	}
	if real, err := filepath.EvalSymlinks(pgdata); err == nil && filepath.Clean(cwd) != real && filepath.Clean(cwd) != pgdata {
		return removeIfExists(pidFile) // another cluster's server
	}
	if ppid := parentPID(pid); ppid > 1 && alive(ppid) {
		return fmt.Errorf("localpg: PostgreSQL is already running on %s (pid %d, started by pid %d): stop that program first", pgdata, pid, ppid)
	}
	// An orphan of a program that died without stopping it: shut it down.
	_ = syscall.Kill(pid, syscall.SIGINT)
	deadline := time.Now().Add(stopTimeout)
	for alive(pid) {
		if time.Now().After(deadline) {
			return fmt.Errorf("localpg: an orphaned PostgreSQL (pid %d) on %s does not shut down", pid, pgdata)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return removeIfExists(pidFile)
}

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// alive reports whether pid is a process that has not exited (zombies count as exited).
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		if i := bytes.LastIndexByte(st, ')'); i >= 0 && i+2 < len(st) && st[i+2] == 'Z' {
			return false
		}
	}
	return true
}

func parentPID(pid int) int {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(st, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(st[i+1:]))
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// serverEnv is this process's environment without libpq's variables, which would
// otherwise steer initdb and postgres.
func serverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tail returns the last lines of a log.
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
