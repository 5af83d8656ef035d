package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/shopfront/bookstore/internal/testdb"
)

// testPayments chooses the embedded test PSP (PAYMENTS=test), as every test server that
// pays with test tokens must: serve refuses to start without a PSP chosen.
func testPayments(vars map[string]string) map[string]string {
	vars["PAYMENTS"] = "test"
	return vars
}

func paymentsFrom(t *testing.T, dev bool, vars map[string]string, args ...string) paymentConfig {
	t.Helper()
	var c paymentConfig
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.register(fs, env(vars), dev)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return c
}

// The PSP is chosen, never fallen back to: serve without a Stripe key and without
// PAYMENTS=test has none; dev takes test payments unless told otherwise.
func TestPaymentsChoice(t *testing.T) {
	const key = "sk_test_123"
	for _, tc := range []struct {
		name string
		dev  bool
		vars map[string]string
		args []string
		want string // the PSP, or a piece of the error
	}{
		{"serve without a key", false, nil, nil, "error: PAYMENTS=test"},
		{"serve with a key", false, map[string]string{"STRIPE_SECRET_KEY": key}, nil, paymentsStripe},
		{"serve, test payments", false, map[string]string{"PAYMENTS": "test"}, nil, paymentsTest},
		{"serve, test payments by flag", false, nil, []string{"--payments", "test"}, paymentsTest},
		{"serve, Stripe without a key", false, map[string]string{"PAYMENTS": "stripe"}, nil, "error: needs STRIPE_SECRET_KEY"},
		{"serve, both", false, map[string]string{"PAYMENTS": "test", "STRIPE_SECRET_KEY": key}, nil, "error: both set"},
		{"serve, unknown", false, map[string]string{"PAYMENTS": "free"}, nil, `error: "free"`},
		{"dev without a key", true, nil, nil, paymentsTest},
		{"dev with a key", true, map[string]string{"STRIPE_SECRET_KEY": key}, nil, paymentsStripe},
		{"dev, Stripe without a key", true, map[string]string{"PAYMENTS": "stripe"}, nil, "error: needs STRIPE_SECRET_KEY"},
		{"failpoint with test payments", false, map[string]string{"PAYMENTS": "test", "BOOKSTORE_FAILPOINT_AFTER_CHARGE": "1m"}, nil, paymentsTest},
		{"failpoint with Stripe", false, map[string]string{"STRIPE_SECRET_KEY": key, "BOOKSTORE_FAILPOINT_AFTER_CHARGE": "1m"}, nil, "error: only honoured with PAYMENTS=test"},
		{"failpoint in dev with Stripe", true, map[string]string{"STRIPE_SECRET_KEY": key, "BOOKSTORE_FAILPOINT_AFTER_CHARGE": "1m"}, nil, "error: only honoured with PAYMENTS=test"},
		{"webhook without Stripe", true, map[string]string{"STRIPE_WEBHOOK_SECRET": "whsec_1"}, nil, "error: STRIPE_WEBHOOK_SECRET"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := paymentsFrom(t, tc.dev, tc.vars, tc.args...)
			name, err := c.psp()
			if err == nil {
				err = c.validate()
			}
			if want, ok := strings.CutPrefix(tc.want, "error: "); ok {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("got %q, %v; want an error about %q", name, err, want)
				}
				return
			}
			if err != nil || name != tc.want {
				t.Fatalf("got %q, %v; want %q", name, err, tc.want)
			}
		})
	}
}

// serve without a Stripe key and without PAYMENTS=test refuses to start, saying what to
// set.
func TestServeRefusesToStartWithoutPayments(t *testing.T) {
	url := testdb.NewURL(t)
	var out bytes.Buffer
	err := run(context.Background(), []string{"serve", "--addr", "127.0.0.1:0"}, env(withKeys(t, map[string]string{"DATABASE_URL": url})), &out, &out)
	if err == nil || !strings.Contains(err.Error(), "STRIPE_SECRET_KEY") || !strings.Contains(err.Error(), "PAYMENTS=test") {
		t.Fatalf("serve without payments: %v", err)
	}
}

// The process: a non-zero exit and the message on stderr.
func TestServeWithoutPaymentsExitsNonZero(t *testing.T) {
	bin := buildBookstore(t)
	url := testdb.NewURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // a hang is a failure, not a hang
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "serve", "--addr", "127.0.0.1:0")
	dir := t.TempDir()
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "TMPDIR=" + dir, "DATABASE_URL=" + url}
	for k, v := range withKeys(t, map[string]string{}) {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 || ctx.Err() != nil {
		t.Fatalf("serve without payments: %v\n%s", err, stderr.String())
	}
	if msg := stderr.String(); !strings.Contains(msg, "bookstore: no payments: set STRIPE_SECRET_KEY") || !strings.Contains(msg, "PAYMENTS=test") {
		t.Fatalf("stderr:\n%s", msg)
	}
}
