package events

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore/store"
)

// TestFulfilmentPanicIsRecoveredByTheRelay: a consumer's panic is an error, not the
// end of the process ("one consumer's bug must not take down the process and every other
// consumer with it"). Fulfilment calls Ship and RefundCancelled on forEachOrder's
// goroutines, out of reach of Relay.handle's recover: a panic below them (here a nil
// Orders; in production any bug in the carrier client, the PII opener, the PSP
// client...) killed the whole server until forEachOrder recovered it. The handling runs
// in a child process so that a crash is observed rather than suffered.
func TestFulfilmentPanicIsRecoveredByTheRelay(t *testing.T) {
	const child = "REVIEW3_FULFILMENT_PANIC_CHILD"
	if os.Getenv(child) == "1" {
		r := &Relay{}
		c := &consumer{name: "fulfilment", h: &Fulfilment{Workers: 2}} // Orders nil: Ship panics
		evs := []store.Event{
			{ID: uuid.New(), Topic: store.TopicOrderPaid, AggregateID: uuid.New()},
			{ID: uuid.New(), Topic: store.TopicOrderPaid, AggregateID: uuid.New()},
		}
		err := r.handle(context.Background(), c, evs)
		fmt.Printf("HANDLED: %v\n", err)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestFulfilmentPanicIsRecoveredByTheRelay$", "-test.count=1")
	cmd.Env = append(os.Environ(), child+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "HANDLED: ") || !strings.Contains(string(out), "panicked") {
		t.Fatalf("a panic in a fulfilment call was not turned into the batch's error; the process died (%v):\n%s",
			err, firstLines(string(out), 12))
	}
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}
