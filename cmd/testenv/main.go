// Command testenv runs a command (the tests) against private servers that it starts for
// the run and stops afterwards:
//
//	go run ./cmd/testenv -- go test -race ./...
//
// It starts PostgreSQL (durability off, in a temporary directory), Redis and stripe-mock
// (built with go install at a pinned version on first use) on free loopback ports, and
// CockroachDB too when a cockroach binary is on PATH (or uses COCKROACH_URL when that is
// set), and hands their URLs to the command in BOOKSTORE_TEST_DATABASE_URL,
// BOOKSTORE_TEST_REDIS_URL, BOOKSTORE_TEST_STRIPE_URL and BOOKSTORE_TEST_COCKROACH_URL.
// Under CI a stripe-mock that cannot be built or started fails the run; elsewhere (say,
// offline) testenv warns and the Stripe adapter's tests skip.
// The servers are stopped however the command ends, also on Ctrl-C or SIGTERM, which
// are passed on to the command; testenv exits with the command's exit code.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"github.com/shopfront/bookstore/internal/localcrdb"
	"github.com/shopfront/bookstore/internal/localpg"
	"github.com/shopfront/bookstore/internal/localredis"
	"github.com/shopfront/bookstore/internal/localstripe"
	"github.com/shopfront/bookstore/internal/testdb"
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: testenv -- COMMAND [ARG...]\n\nStarts PostgreSQL, Redis, stripe-mock (and CockroachDB when a cockroach binary is on PATH\nor COCKROACH_URL is set), runs COMMAND with their URLs in "+testdb.EnvPostgres+",\n"+testdb.EnvRedis+", "+testdb.EnvStripe+" and "+testdb.EnvCockroach+", then stops them.")
		return 2
	}

	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)

	// Until the command runs, a signal aborts the start-up.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var interrupted os.Signal
	startupDone := make(chan struct{})
	startupWatch := make(chan struct{})
	go func() {
		defer close(startupWatch)
		select {
		case s := <-sigs:
			interrupted = s
			cancel()
		case <-startupDone:
		}
	}()

	var stops []func()
	defer func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}()
	env, err := startServices(ctx, getenv, stderr, &stops)
	close(startupDone)
	<-startupWatch
	if interrupted != nil {
		fmt.Fprintf(stderr, "testenv: %v during start-up; stopping\n", interrupted)
		return 128 + signalNumber(interrupted)
	}
	if err != nil {
		fmt.Fprintln(stderr, "testenv:", err)
		return 1
	}

	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(stderr, "testenv:", err)
		return 127
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case s := <-sigs:
			// The command shares our process group, so a terminal's Ctrl-C reached it
			// already; a signal sent to us alone (kill, a CI timeout) did not.
			_ = cmd.Process.Signal(s)
		case err := <-done:
			return exitCode(err, stderr)
		}
	}
}

// startServices starts the servers, appending each one's stop function to stops, and
// returns the environment that tells the tests where they are.
func startServices(ctx context.Context, getenv func(string) string, stderr io.Writer, stops *[]func()) ([]string, error) {
	var env []string

	pg, err := localpg.Start(ctx, localpg.Options{Fast: true})
	if err != nil {
		return nil, fmt.Errorf("start PostgreSQL: %w", err)
	}
	*stops = append(*stops, stopper(stderr, "PostgreSQL", pg.Stop))
	env = append(env, testdb.EnvPostgres+"="+pg.URL())
	fmt.Fprintf(stderr, "testenv: PostgreSQL at %s\n", pg.URL())

	rd, err := localredis.Start(ctx, localredis.Options{})
	if err != nil {
		return nil, fmt.Errorf("start Redis: %w", err)
	}
	*stops = append(*stops, stopper(stderr, "Redis", rd.Stop))
	env = append(env, testdb.EnvRedis+"="+rd.URL())
	fmt.Fprintf(stderr, "testenv: Redis at %s\n", rd.URL())

	switch sm, err := localstripe.Start(ctx, localstripe.Options{Stderr: os.Stderr}); {
	case err == nil:
		*stops = append(*stops, stopper(stderr, "stripe-mock", sm.Stop))
		env = append(env, testdb.EnvStripe+"="+sm.URL())
		fmt.Fprintf(stderr, "testenv: stripe-mock %s at %s\n", localstripe.Version, sm.URL())
	case getenv("CI") != "" || ctx.Err() != nil:
		return nil, fmt.Errorf("start stripe-mock: %w", err)
	default:
		fmt.Fprintf(stderr, "testenv: warning: no stripe-mock, the Stripe adapter's tests will skip: %v\n", err)
	}

	switch u := getenv("COCKROACH_URL"); {
	case u != "":
		env = append(env, testdb.EnvCockroach+"="+u)
		fmt.Fprintf(stderr, "testenv: CockroachDB at %s (COCKROACH_URL)\n", u)
	case localcrdb.Available() == nil:
		crdb, err := localcrdb.Start(ctx, localcrdb.Options{})
		if err != nil {
			return nil, fmt.Errorf("start CockroachDB: %w", err)
		}
		*stops = append(*stops, stopper(stderr, "CockroachDB", crdb.Stop))
		env = append(env, testdb.EnvCockroach+"="+crdb.URL())
		fmt.Fprintf(stderr, "testenv: CockroachDB at %s\n", crdb.URL())
	}
	return env, nil
}

func stopper(stderr io.Writer, name string, stop func() error) func() {
	return func() {
		if err := stop(); err != nil {
			fmt.Fprintf(stderr, "testenv: stop %s: %v\n", name, err)
		}
	}
}

// exitCode is the command's exit status, or 128+N when signal N ended it (as a shell
// reports it).
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	fmt.Fprintln(stderr, "testenv:", err)
	return 1
}

func signalNumber(s os.Signal) int {
	if n, ok := s.(syscall.Signal); ok {
		return int(n)
	}
	return 1
}
