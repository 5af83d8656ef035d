// Package localredis runs a private, non-persistent Redis server on a free loopback port
// for tests, from the machine's redis-server binary (Debian's redis-server package).
package localredis

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Options configure Start; there are none yet.
type Options struct{}

// Server is a running Redis server.
type Server struct {
	port    int
	dir     string
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
	logFile *os.File

	stopOnce sync.Once
	stopErr  error
}

const installHint = "install it: apt-get install -y redis-server"

// Available reports whether redis-server is installed.
func Available() error {
	_, err := binary()
	return err
}

func binary() (string, error) {
	if p, err := exec.LookPath("redis-server"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/bin/redis-server", "/usr/local/bin/redis-server", "/usr/sbin/redis-server"} {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	return "", errors.New("localredis: redis-server not found on PATH or in /usr/bin: " + installHint)
}

// Start starts redis-server on a free 127.0.0.1 port with persistence off and its files
// in a temporary directory, and waits until it answers PING. The server runs in its own
// process group (a terminal's Ctrl-C reaches only this program, which should call Stop)
// and is killed should this process die. ctx bounds the start only.
func Start(ctx context.Context, _ Options) (*Server, error) {
	bin, err := binary()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "localredis-")
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir, logPath: filepath.Join(dir, "redis.log")}
	for attempt := 0; ; attempt++ {
		var port int
		if port, err = freePort(); err != nil {
			break
		}
		err = s.launch(ctx, bin, port)
		if err == nil || attempt >= 4 || !errors.Is(err, errPortInUse) {
			break
		}
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// URL is the server's redis:// URL (database 0).
func (s *Server) URL() string {
	return "redis://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) + "/0"
}

// Stop shuts the server down, waits for it and removes its directory. Calling it again
// returns the first call's result.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() { s.stopErr = s.stop() })
	return s.stopErr
}

func (s *Server) stop() error {
	var errs []error
	select {
	case <-s.exited:
		errs = append(errs, fmt.Errorf("localredis: the server had already exited: %v", s.waitErr))
	default:
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			<-s.exited
			errs = append(errs, errors.New("localredis: the server did not shut down within 30s"))
		}
	}
	s.logFile.Close()
	if err := os.RemoveAll(s.dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

var errPortInUse = errors.New("port in use")

func (s *Server) launch(ctx context.Context, bin string, port int) error {
	f, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin,
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--daemonize", "no",
	)
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = sysProcAttr()
	exited := make(chan struct{})
	started := make(chan error, 1)
	// The parent-death signal follows the thread that forked: keep that thread for the
	// server's whole life.
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
		return fmt.Errorf("localredis: start %s: %w", bin, err)
	}
	s.cmd, s.exited, s.logFile, s.port = cmd, exited, f, port

	err = s.waitReady(ctx)
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
	if bytes.Contains(log, []byte("already in use")) {
		err = fmt.Errorf("%w: %w", errPortInUse, err)
	}
	return fmt.Errorf("%w\nserver log:\n%s", err, tail(log))
}

func (s *Server) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var last error
	for {
		select {
		case <-s.exited:
			return fmt.Errorf("localredis: redis-server exited during start-up: %v", s.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("localredis: redis-server did not answer on port %d: %w (last error: %v)", s.port, ctx.Err(), last)
		default:
		}
		if last = ping(ctx, s.port); last == nil {
			return nil
		}
		select {
		case <-s.exited:
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func ping(ctx context.Context, port int) error {
	d := net.Dialer{Timeout: time.Second}
	c, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
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
