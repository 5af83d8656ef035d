package embedded

import (
	"errors"
	"testing"
	"time"
)

// TestOpenLiveRootInUse: a second OpenLive of a root held open (a reindex beside a
// running server) fails at once with ErrInUse instead of blocking on Bleve's lock, and
// the root opens again once the first is closed.
func TestOpenLiveRootInUse(t *testing.T) {
	dir := t.TempDir()
	l, err := OpenLive(dir)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		l2, err := OpenLive(dir)
		if err == nil {
			l2.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrInUse) {
			t.Fatalf("second open: %v, want ErrInUse", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a second OpenLive of a root in use blocks")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l, err = OpenLive(dir)
	if err != nil {
		t.Fatalf("open after close: %v", err)
	}
	l.Close()
}
