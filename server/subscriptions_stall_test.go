package server_test

import (
	"context"
	"net"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopfront/bookstore/server"
)

// stallListener's connections stop writing to the client once stall is set, as if the
// client had stopped reading and the socket buffers were full: a write blocks until the
// connection is closed or its write deadline passes.
type stallListener struct {
	net.Listener
	stall   atomic.Bool
	blocked chan *stallConn // a connection whose write blocked on the stall
}

func (l *stallListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &stallConn{Conn: c, l: l, closed: make(chan struct{})}, nil
}

// waitClosed waits (up to wait) for the server to close c.
func (c *stallConn) waitClosed(t *testing.T) {
	t.Helper()
	select {
	case <-c.closed:
	case <-time.After(wait):
		t.Fatal("the server kept the stalled connection open")
	}
}

type stallConn struct {
	net.Conn
	l        *stallListener
	once     sync.Once
	closed   chan struct{}
	deadline atomic.Pointer[time.Time]
}

func (c *stallConn) Write(b []byte) (int, error) {
	if !c.l.stall.Load() {
		return c.Conn.Write(b)
	}
	select {
	case c.l.blocked <- c:
	default:
	}
	for {
		select {
		case <-c.closed:
			return 0, net.ErrClosed
		case <-time.After(5 * time.Millisecond):
		}
		if d := c.deadline.Load(); d != nil && !d.IsZero() && !time.Now().Before(*d) {
			return 0, os.ErrDeadlineExceeded
		}
	}
}

func (c *stallConn) SetWriteDeadline(t time.Time) error {
	c.deadline.Store(&t)
	return c.Conn.SetWriteDeadline(t)
}

func (c *stallConn) SetDeadline(t time.Time) error {
	c.deadline.Store(&t)
	return c.Conn.SetDeadline(t)
}

func (c *stallConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// newStallServer serves an API (newSubsAPI's configuration, with configure applied) on
// a stallListener; it returns that API and the first server's (on the same database and
// Redis, for requests once the stall is on).
func newStallServer(t *testing.T, configure func(*server.Config)) (*api, *api, *stallListener) {
	t.Helper()
	var cfg *server.Config
	a, _ := newSubsAPI(t, false, func(c *server.Config) {
		configure(c)
		cfg = c
	})
	srv := httptest.NewUnstartedServer(server.New(*cfg))
	l := &stallListener{Listener: srv.Listener, blocked: make(chan *stallConn, 1)}
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	// Everything through the new server: it has keys of its own (PII).
	b := *a
	b.url = srv.URL
	return &b, a, l
}

// A WebSocket client that stops reading but keeps sending pongs is disconnected: by the
// write timeout, or (with a long write timeout) when its session ends.
func TestOrderSubscriptionDropsAClientThatStopsReading(t *testing.T) {
	for _, tc := range []struct {
		name    string
		timeout time.Duration
		logout  bool
	}{
		{"write timeout", 300 * time.Millisecond, false},
		{"logout", time.Hour, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, other, l := newStallServer(t, func(c *server.Config) { c.Subscriptions.WriteTimeout = tc.timeout })
			bs := a.cartBooks(1, 10)
			ann := a.register("ann@example.com", "Ann")
			order, _ := paidOrder(t, a, ann.AccessToken, "", bs[0])
			ws := dialWS(t, a.url, map[string]any{"authorization": "Bearer " + ann.AccessToken}, nil)
			ws.acked()
			ws.subscribe("1", statusSub, map[string]any{"id": order})
			update(t, ws.next("1"))
			l.stall.Store(true)
			// Unsolicited pongs: they clear gqlgen's pong deadline.
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() {
				for ctx.Err() == nil {
					ws.send(wsMsg{Type: "pong"})
					time.Sleep(20 * time.Millisecond)
				}
			}()
			blocked := <-l.blocked // a server write (a ping) waits on the client
			if tc.logout {
				var out struct{ Logout struct{ Ok bool } }
				other.ok(`mutation($t: String!) { logout(refreshToken: $t) { ok } }`, map[string]any{"t": ann.RefreshToken}, &out)
				if !out.Logout.Ok {
					t.Fatal("logout failed")
				}
			}
			blocked.waitClosed(t)
			ws.closed()
		})
	}
}
