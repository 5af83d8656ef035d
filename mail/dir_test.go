package mail_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopfront/bookstore/mail"
)

func newDir(t *testing.T) (*mail.Dir, *bytes.Buffer) {
	t.Helper()
	var logs syncBuffer
	d, err := mail.NewDir(filepath.Join(t.TempDir(), "mail"), slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return d, &logs.b
}

// syncBuffer is a log sink safe for the concurrent test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func emls(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		switch {
		case e.Name() == ".lock":
		case strings.HasSuffix(e.Name(), ".eml") && !strings.HasPrefix(e.Name(), "."):
			names = append(names, e.Name())
		default:
			t.Errorf("stray file %s (a temporary file left behind?)", e.Name())
		}
	}
	return names
}

// TestDirWritesEML: the file is an RFC 5322 message a mail client opens (net/mail parses
// it, the multipart bodies decode), named by time and key, and the log names its path
// without the recipient's address.
func TestDirWritesEML(t *testing.T) {
	t.Parallel()
	d, logs := newDir(t)
	at := time.Date(2026, 12, 2, 7, 3, 38, 0, time.UTC)
	mail.SetClock(d, func() time.Time { return at })
	o := sampleOrder()
	o.Name = "Zoë Ångström-Łukasz"
	m, err := mail.OrderConfirmation(o, from)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	names := emls(t, d.Path())
	if len(names) != 1 || !regexp.MustCompile(`^20261202T070338Z-order_0b9f0c1e-8d4a-4c55-9a57-3c1d2e4f5a6b_confirmation-[a-z2-7]{13}\.eml$`).MatchString(names[0]) {
		t.Fatalf("files %q", names)
	}
	path := filepath.Join(d.Path(), names[0])
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p := parse(t, raw)
	if p.header.Get("Message-Id") != m.MessageID() || p.header.Get("Subject") != m.Subject || p.header.Get("To") == "" {
		t.Errorf("headers %v", p.header)
	}
	if to, err := p.header.AddressList("To"); err != nil || len(to) != 1 || to[0].Name != o.Name || to[0].Address != o.Email {
		t.Errorf("To %q (%v): a non-ASCII name must survive RFC 2047", p.header.Get("To"), err)
	}
	if !strings.Contains(p.text, "Hello Zoë Ångström-Łukasz,") {
		t.Errorf("text:\n%s", p.text)
	}
	if dt, err := p.header.Date(); err != nil || !dt.Equal(at) {
		t.Errorf("Date %q, want the time of writing %v", p.header.Get("Date"), at)
	}
	if !strings.Contains(p.text, "Total:    $43.84") || !strings.Contains(p.html, "<td>Kindred</td>") {
		t.Errorf("bodies:\n%s\n%s", p.text, p.html)
	}
	if !strings.Contains(logs.String(), "mail written") || !strings.Contains(logs.String(), path) || strings.Contains(logs.String(), "ann@example.com") {
		t.Errorf("log %q: want the path, not the address", logs.String())
	}
	if fi, err := os.Stat(d.Path()); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("mail dir mode %v (%v), want 0700: emails carry addresses", fi.Mode(), err)
	}
}

// TestDirIdempotent: the same key again (an outbox event handled twice, a second later)
// writes nothing new; another key writes another file.
func TestDirIdempotent(t *testing.T) {
	t.Parallel()
	d, logs := newDir(t)
	now := time.Date(2026, 12, 2, 7, 0, 0, 0, time.UTC)
	mail.SetClock(d, func() time.Time { now = now.Add(time.Minute); return now })
	m := plainMessage("order/1/confirmation")
	for range 3 {
		if err := d.Send(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	first := emls(t, d.Path())
	if len(first) != 1 || !strings.HasPrefix(first[0], "20261202T070100Z-") {
		t.Fatalf("files %q, want the first write only", first)
	}
	if !strings.Contains(logs.String(), "mail already written") {
		t.Errorf("log %q", logs.String())
	}
	// Keys that clean up to the same slug are still two emails.
	for _, k := range []string{"order/1/cancelled", "order.1.cancelled"} {
		if err := d.Send(context.Background(), plainMessage(k)); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(emls(t, d.Path())); n != 3 {
		t.Fatalf("%d files, want 3", n)
	}
	// Invalid messages and cancelled contexts write nothing.
	if err := d.Send(context.Background(), mail.Message{Key: "x"}); err == nil {
		t.Error("invalid message written")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := d.Send(ctx, plainMessage("late")); err == nil {
		t.Error("sent with a cancelled context")
	}
	if n := len(emls(t, d.Path())); n != 3 {
		t.Fatalf("%d files, want 3", n)
	}
}

// TestDirConcurrent: goroutines of two Dir values on one directory (two dev processes
// sharing a data dir) send the same few keys many times at once: one file per key, each
// complete, no temporary file left.
func TestDirConcurrent(t *testing.T) {
	t.Parallel()
	d1, _ := newDir(t)
	d2, err := mail.NewDir(d1.Path(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var tick atomic.Int64
	clock := func() time.Time { return time.Unix(1_800_000_000+tick.Add(1), 0) }
	mail.SetClock(d1, clock)
	mail.SetClock(d2, clock)
	const keys, senders = 5, 24
	var wg sync.WaitGroup
	errs := make(chan error, senders*keys)
	for i := range senders {
		d := d1
		if i%2 == 1 {
			d = d2
		}
		wg.Go(func() {
			for k := range keys {
				if err := d.Send(context.Background(), plainMessage(fmt.Sprintf("order/%d/confirmation", (k+i)%keys))); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	names := emls(t, d1.Path())
	if len(names) != keys {
		t.Fatalf("%d files for %d keys: %q", len(names), keys, names)
	}
	for _, n := range names {
		raw, err := os.ReadFile(filepath.Join(d1.Path(), n))
		if err != nil {
			t.Fatal(err)
		}
		if p := parse(t, raw); !strings.Contains(p.text, "text body of order/") {
			t.Errorf("%s: text %q", n, p.text)
		}
	}
}
