// Package localstripe runs stripe-mock (Stripe's official API mock, validating requests
// against Stripe's OpenAPI spec) on a free loopback port for tests. The binary is built
// from source with `go install` at a pinned version into the user's cache directory the
// first time, through the Go module proxy, so no other download is involved.
package localstripe

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"errors"
	"fmt"
	"net"
	"net/http"
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

// Version is the stripe-mock release the tests run against. It bundles its own copy of
// Stripe's OpenAPI spec; update it together with stripe-go.
const Version = "v0.203.0"

const module = "github.com/stripe/stripe-mock"

// Options configure Start.
type Options struct {
	// Stderr receives go install's output when the binary is built; nil discards it.
	Stderr *os.File
}

// Server is a running stripe-mock.
type Server struct {
	port    int
	dir     string
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
	logFile *os.File

	stopOnce sync.Once
	stopErr  error
}

// Binary returns the path of the pinned stripe-mock, building it with `go install` when
// the cache holds no verified copy. A copy is verified by its embedded build
// information (module path and version): a truncated or foreign file has none. go
// install writes into a private temporary directory and the binary is renamed into
// place, so another test run never sees it half-written.
func Binary(ctx context.Context, stderr *os.File) (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("localstripe: %w", err)
	}
	dir := filepath.Join(cache, "bookstore", "stripe-mock", Version)
	bin := filepath.Join(dir, "stripe-mock")
	if verify(bin) == nil {
		return bin, nil
	}
	goBin, err := goTool()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("localstripe: %w", err)
	}
	// In dir, so that the rename stays on one file system.
	tmp, err := os.MkdirTemp(dir, ".install-")
	if err != nil {
		return "", fmt.Errorf("localstripe: %w", err)
	}
	defer os.RemoveAll(tmp)
	cmd := exec.CommandContext(ctx, goBin, "install", module+"@"+Version)
	// Outside any module, so our go.mod neither constrains nor records the tool.
	cmd.Dir = os.TempDir()
	cmd.Env = append(os.Environ(), "GOBIN="+tmp, "GOWORK=off")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if stderr != nil {
		fmt.Fprintf(stderr, "localstripe: building stripe-mock %s (go install, once)\n", Version)
	}
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("localstripe: go install %s@%s: %w\n%s", module, Version, err, tail(out.Bytes()))
	}
	built := filepath.Join(tmp, "stripe-mock")
	if err := verify(built); err != nil {
		return "", err
	}
	if err := os.Rename(built, bin); err != nil {
		return "", fmt.Errorf("localstripe: %w", err)
	}
	return bin, nil
}

// verify checks that bin is an executable built from the pinned stripe-mock.
func verify(bin string) error {
	fi, err := os.Stat(bin)
	if err != nil {
		return fmt.Errorf("localstripe: %w", err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o100 == 0 {
		return fmt.Errorf("localstripe: %s is not an executable file", bin)
	}
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		return fmt.Errorf("localstripe: %s is not a complete Go binary: %w", bin, err)
	}
	if info.Main.Path != module || info.Main.Version != Version {
		return fmt.Errorf("localstripe: %s is %s@%s, want %s@%s", bin, info.Main.Path, info.Main.Version, module, Version)
	}
	return nil
}

func goTool() (string, error) {
	if p, err := exec.LookPath("go"); err == nil {
		return p, nil
	}
	p := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	return "", errors.New("localstripe: the go command is needed to build stripe-mock and is not on PATH")
}

// Start builds stripe-mock if needed and starts it on a free 127.0.0.1 port (its HTTPS
// listener on a Unix socket in a temporary directory, so it takes no fixed port), and
// waits until it answers. The server runs in its own process group and is killed should
// this process die. ctx bounds the build and the start only.
func Start(ctx context.Context, opts Options) (*Server, error) {
	bin, err := Binary(ctx, opts.Stderr)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "localstripe-")
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir}
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

// URL is the server's base URL (http://127.0.0.1:port), what stripe-go's backend URL
// takes.
func (s *Server) URL() string {
	return "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
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
		errs = append(errs, fmt.Errorf("localstripe: stripe-mock had already exited: %v", s.waitErr))
	default:
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			<-s.exited
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
	logPath := filepath.Join(s.dir, "stripe-mock.log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin,
		"-http-addr", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		"-https-unix", filepath.Join(s.dir, "https.sock"),
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
		return fmt.Errorf("localstripe: start %s: %w", bin, err)
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
	log, _ := os.ReadFile(logPath)
	if bytes.Contains(log, []byte("address already in use")) {
		err = fmt.Errorf("%w: %w", errPortInUse, err)
	}
	os.Remove(filepath.Join(s.dir, "https.sock"))
	return fmt.Errorf("%w\nstripe-mock log:\n%s", err, tail(log))
}

func (s *Server) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var last error
	for {
		select {
		case <-s.exited:
			return fmt.Errorf("localstripe: stripe-mock exited during start-up: %v", s.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("localstripe: stripe-mock did not answer on port %d: %w (last error: %v)", s.port, ctx.Err(), last)
		default:
		}
		if last = probe(ctx, s.URL()); last == nil {
			return nil
		}
		select {
		case <-s.exited:
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// probe reads the balance, which stripe-mock answers from its fixtures once its
// router is up.
func probe(ctx context.Context, base string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/balance", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer sk_test_123")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /v1/balance: %s", resp.Status)
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
