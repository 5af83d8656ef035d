package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	coderws "github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/auth"
	"github.com/shopfront/bookstore/loaders"
	"github.com/shopfront/bookstore/store"
)

// CloseForbidden is the WebSocket close code of a connection whose credentials were
// refused (a bad, expired or revoked access token at connection_init) or ended while
// connected (logout, revocation, the token's expiry): graphql-ws's Forbidden.
const CloseForbidden = 4403

// Subscription defaults (SubscriptionOptions' zero values).
const (
	DefaultSubscriptionKeepAlive    = 15 * time.Second
	DefaultSubscriptionsPerConn     = 10
	DefaultSubscriptionsPerCustomer = 20
	DefaultSubscriptionIdleTimeout  = 5 * time.Minute
	DefaultSubscriptionSessionCheck = time.Minute
	DefaultSubscriptionInitTimeout  = 10 * time.Second
	DefaultSubscriptionWriteTimeout = 10 * time.Second
)

// wsEndGrace is how long a socket whose state ended (idle, logout, shutdown) may still
// be writing before it is closed outright: its close frame cannot go out behind a
// write to a client that stopped reading.
const wsEndGrace = time.Second

// SubscriptionOptions configures the streaming transports of /graphql:
// graphql-transport-ws over WebSocket, and SSE (POST with Accept: text/event-stream).
// Zero values mean the defaults above.
type SubscriptionOptions struct {
	// KeepAlive is the interval of the server's pings (graphql-transport-ws "ping"; "ka"
	// in the legacy graphql-ws protocol; an SSE comment). A graphql-transport-ws client
	// that answers no ping for two intervals is disconnected.
	KeepAlive time.Duration
	// PerConnection caps the active subscriptions of one socket, PerCustomer those of
	// one customer across their sockets and SSE streams to this instance.
	PerConnection, PerCustomer int
	// IdleTimeout closes a socket (1000) that has had no active subscription that long.
	IdleTimeout time.Duration
	// SessionCheck is how often a signed-in connection's session is checked again
	// (logout, revocation); it also ends when its access token expires.
	SessionCheck time.Duration
	// InitTimeout is how long a socket may take to send connection_init.
	InitTimeout time.Duration
	// WriteTimeout bounds each write to a WebSocket: a client that stops reading is
	// disconnected once a write has waited that long.
	WriteTimeout time.Duration
}

func (o SubscriptionOptions) withDefaults() SubscriptionOptions {
	d := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	d(&o.KeepAlive, DefaultSubscriptionKeepAlive)
	d(&o.IdleTimeout, DefaultSubscriptionIdleTimeout)
	d(&o.SessionCheck, DefaultSubscriptionSessionCheck)
	d(&o.InitTimeout, DefaultSubscriptionInitTimeout)
	d(&o.WriteTimeout, DefaultSubscriptionWriteTimeout)
	if o.PerConnection <= 0 {
		o.PerConnection = DefaultSubscriptionsPerConn
	}
	if o.PerCustomer <= 0 {
		o.PerCustomer = DefaultSubscriptionsPerCustomer
	}
	return o
}

// streams is this instance's state of the streaming transports: the limits, and what
// re-checks sessions. It is the resolvers' StreamGate.
type streams struct {
	opts     SubscriptionOptions
	tokens   auth.Verifier
	sessions []auth.SessionChecker
	origins  []string
	log      *slog.Logger
	maxBody  int64
	// done ends every stream (the server shutting down); nil: never.
	done context.Context

	mu          sync.Mutex
	perCustomer map[uuid.UUID]int
}

type wsStateKey struct{}

// wsState is one socket's: its subscriptions, idle timer and how it is to be closed.
type wsState struct {
	s          *streams
	headerAuth string          // the upgrade request's Authorization header
	ctx        context.Context // ends with the socket's state (idle, logout, shutdown)
	cancel     context.CancelFunc

	// guarded by s.mu
	active int
	idle   *time.Timer
	code   int
	reason string
}

// end closes the socket with code (unless it is already being closed for a reason).
func (st *wsState) end(code int, reason string) {
	st.s.mu.Lock()
	if st.code == 0 {
		st.code, st.reason = code, reason
	}
	st.s.mu.Unlock()
	st.cancel()
}

func (st *wsState) closeWith() (int, string) {
	st.s.mu.Lock()
	defer st.s.mu.Unlock()
	return st.code, st.reason
}

// Begin implements resolvers.StreamGate.
func (s *streams) Begin(ctx context.Context) (func(), error) {
	st, _ := ctx.Value(wsStateKey{}).(*wsState)
	who, signedIn := auth.FromContext(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	if st != nil && st.active >= s.opts.PerConnection {
		return nil, bookstore.Errorf(bookstore.CodeSubscriptionLimit,
			"at most %d subscriptions per connection; complete one first", s.opts.PerConnection)
	}
	if signedIn && s.perCustomer[who.CustomerID] >= s.opts.PerCustomer {
		return nil, bookstore.Errorf(bookstore.CodeSubscriptionLimit,
			"at most %d subscriptions per customer; complete one first", s.opts.PerCustomer)
	}
	if st != nil {
		st.active++
		if st.idle != nil {
			st.idle.Stop()
		}
	}
	if signedIn {
		s.perCustomer[who.CustomerID]++
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if st != nil {
				if st.active--; st.active == 0 && st.idle != nil {
					st.idle.Reset(s.opts.IdleTimeout)
				}
			}
			if signedIn {
				if s.perCustomer[who.CustomerID]--; s.perCustomer[who.CustomerID] <= 0 {
					delete(s.perCustomer, who.CustomerID)
				}
			}
		})
	}, nil
}

// isStream reports whether r opens a stream (a WebSocket upgrade or an SSE request):
// those are not bound by the request deadline.
func isStream(r *http.Request) bool {
	return headerHasToken(r.Header, "Upgrade", "websocket") ||
		(r.Method == http.MethodPost && strings.Contains(r.Header.Get("Accept"), "text/event-stream"))
}

// subscriptionsOnly refuses queries and mutations over the streaming transports: they
// would escape the request deadline and the HTTP transport's rules.
type subscriptionsOnly struct{ graphql.GraphExecutor }

func (e subscriptionsOnly) CreateOperationContext(ctx context.Context, p *graphql.RawParams) (*graphql.OperationContext, gqlerror.List) {
	oc, errs := e.GraphExecutor.CreateOperationContext(ctx, p)
	if errs == nil && oc.Operation != nil && oc.Operation.Operation != ast.Subscription {
		return oc, gqlerror.List{{
			Message:    "only subscriptions are served over WebSocket and SSE; send queries and mutations with POST",
			Extensions: map[string]any{"code": CodeBadRequest},
		}}
	}
	return oc, errs
}

// tokenExpiry is the exp of an access token that was verified already (zero if none).
func tokenExpiry(token string) time.Time {
	var c jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(token, &c); err != nil || c.ExpiresAt == nil {
		return time.Time{}
	}
	return c.ExpiresAt.Time
}

// verify checks a bearer credential as auth.Middleware does: the token, then its session.
func (s *streams) verify(ctx context.Context, authorization string) (auth.Identity, string, error) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(authorization), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return auth.Identity{}, "", fmt.Errorf("%w: authorization is not a bearer token", auth.ErrTokenInvalid)
	}
	if s.tokens == nil {
		return auth.Identity{}, "", fmt.Errorf("%w: no token verifier", auth.ErrTokenInvalid)
	}
	id, err := s.tokens.Verify(token)
	if err != nil {
		return auth.Identity{}, "", err
	}
	if err := s.checkSession(ctx, id); err != nil {
		return auth.Identity{}, "", err
	}
	return id, token, nil
}

func (s *streams) checkSession(ctx context.Context, id auth.Identity) error {
	for _, c := range s.sessions {
		revoked, err := c.Revoked(ctx, id)
		if err != nil {
			return fmt.Errorf("%w: cannot check the session: %v", auth.ErrTokenInvalid, err)
		}
		if revoked {
			return auth.ErrSessionRevoked
		}
	}
	return nil
}

// watchSession re-checks a signed-in stream's token and session every SessionCheck and
// when the token expires, until ctx ends; end is called (once) when either fails.
func (s *streams) watchSession(ctx context.Context, token string, end func(reason string)) {
	exp := tokenExpiry(token)
	for {
		wait := s.opts.SessionCheck
		if !exp.IsZero() {
			wait = min(wait, time.Until(exp))
		}
		t := time.NewTimer(max(wait, 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if !exp.IsZero() && !time.Now().Before(exp) {
			end("access token expired")
			return
		}
		id, err := s.tokens.Verify(token)
		if err == nil {
			err = s.checkSession(ctx, id)
		}
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, auth.ErrTokenExpired):
			end("access token expired")
			return
		case err != nil:
			end("session ended")
			return
		}
	}
}

// wsTransport is gqlgen's WebSocket transport with our authentication at
// connection_init, limits, idle timeout, session re-checks, origin checks and close codes.
type wsTransport struct{ s *streams }

func (t wsTransport) Supports(r *http.Request) bool {
	return headerHasToken(r.Header, "Upgrade", "websocket")
}

func (t wsTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	s := t.s
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	st := &wsState{s: s, headerAuth: r.Header.Get("Authorization"), ctx: ctx, cancel: cancel}
	if s.done != nil {
		stop := context.AfterFunc(s.done, func() { st.end(int(coderws.StatusGoingAway), "server shutting down") })
		defer stop()
	}
	defer func() {
		s.mu.Lock()
		if st.idle != nil {
			st.idle.Stop()
		}
		s.mu.Unlock()
	}()
	accept := coderws.AcceptOptions{}
	for _, o := range s.origins {
		if o == "*" {
			accept.InsecureSkipVerify = true
			continue
		}
		accept.OriginPatterns = append(accept.OriginPatterns, o) // scheme://host: matched with the scheme
	}
	ws := transport.Websocket{
		Implementation:        wsImplementation{inner: transport.CoderWebsocketImplementation{AcceptOptions: accept}, st: st},
		InitTimeout:           s.opts.InitTimeout,
		KeepAlivePingInterval: s.opts.KeepAlive,
		PingPongInterval:      s.opts.KeepAlive,
		InitFunc: func(ctx context.Context, p transport.InitPayload) (context.Context, *transport.InitPayload, error) {
			return t.init(ctx, st, p)
		},
	}
	ws.Do(w, r.WithContext(context.WithValue(ctx, wsStateKey{}, st)), subscriptionsOnly{exec})
}

// init authenticates connection_init: its authorization (else the upgrade request's
// Authorization header); none is a guest. A refused credential closes with 4403.
func (t wsTransport) init(ctx context.Context, st *wsState, p transport.InitPayload) (context.Context, *transport.InitPayload, error) {
	s := t.s
	authz := p.Authorization()
	if authz == "" {
		authz = st.headerAuth
	}
	if authz != "" {
		id, token, err := s.verify(ctx, authz)
		if err != nil {
			msg := "invalid access token"
			switch {
			case errors.Is(err, auth.ErrTokenExpired):
				msg = "access token expired"
			case errors.Is(err, auth.ErrSessionRevoked):
				msg = "session ended; sign in again"
			}
			return transport.AppendCloseReason(transport.WithWebsocketCloseCode(ctx, CloseForbidden), msg), nil, errors.New(msg)
		}
		ctx = auth.WithIdentity(ctx, id)
		go s.watchSession(ctx, token, func(reason string) { st.end(CloseForbidden, reason) })
	}
	s.mu.Lock()
	if st.active == 0 {
		st.idle = time.AfterFunc(s.opts.IdleTimeout, func() { st.end(int(coderws.StatusNormalClosure), "idle timeout") })
	}
	s.mu.Unlock()
	return ctx, nil, nil
}

// wsImplementation accepts with the origin checks and wraps the connection so that a
// close asked for by wsState (4403, idle, shutdown) goes out with its code: gqlgen
// closes a cancelled connection with 1000.
type wsImplementation struct {
	inner transport.WebsocketImplementation
	st    *wsState
}

func (i wsImplementation) Accept(w http.ResponseWriter, r *http.Request, o transport.WebsocketAcceptOptions) (transport.WebsocketConn, error) {
	c, err := i.inner.Accept(w, r, o)
	if err != nil {
		return nil, err
	}
	wc := &wsConn{WebsocketConn: c, st: i.st, timeout: i.st.s.opts.WriteTimeout}
	// gqlgen writes without a deadline while holding the connection's lock, and closes
	// under that lock: a write blocked on a client that stopped reading would keep the
	// socket open for ever. Once the state has ended, a write still pending after the
	// grace is such a write: close the socket under it.
	context.AfterFunc(i.st.ctx, func() {
		time.AfterFunc(min(wsEndGrace, wc.timeout), func() {
			if wc.writing.Load() > 0 {
				_ = wc.WebsocketConn.Close()
			}
		})
	})
	return wc, nil
}

// wsConn is gqlgen's coder/websocket connection with our close codes and a timeout on
// every write: a write that has waited timeout closes the connection (the close frame
// itself is bounded by coder/websocket).
type wsConn struct {
	transport.WebsocketConn
	st      *wsState
	timeout time.Duration
	writing atomic.Int32
}

func (c *wsConn) WriteJSON(v any) error {
	c.writing.Add(1)
	defer c.writing.Add(-1)
	t := time.AfterFunc(c.timeout, func() { _ = c.WebsocketConn.Close() })
	defer t.Stop()
	return c.WebsocketConn.WriteJSON(v)
}

func (c *wsConn) WriteClose(code int, msg string) error {
	if cc, reason := c.st.closeWith(); cc != 0 {
		code, msg = cc, reason
	}
	return c.WebsocketConn.WriteClose(code, msg)
}

func (c *wsConn) SetReadLimit(limit int64) {
	if l, ok := c.WebsocketConn.(transport.WebsocketReadLimiter); ok {
		l.SetReadLimit(limit)
	}
}

func (c *wsConn) SetReadDeadline(t time.Time) error {
	if d, ok := c.WebsocketConn.(transport.WebsocketReadDeadliner); ok {
		return d.SetReadDeadline(t)
	}
	return nil
}

// sseTransport is gqlgen's SSE transport for subscriptions, with the body limit, the
// Authorization header's identity (a refused token is 401, not a guest), the customer
// limit and the session re-checks; the stream outlives the server's write timeout.
type sseTransport struct{ s *streams }

func (t sseTransport) Supports(r *http.Request) bool { return transport.SSE{}.Supports(r) }

func (t sseTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	s := t.s
	if err := auth.AuthError(r.Context()); err != nil {
		_, msg := auth.Require(r.Context())
		writeRequestError(w, typeJSON, http.StatusUnauthorized, bookstore.CodeUnauthenticated, msg.Error())
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBody))
	if err != nil {
		writeRequestError(w, typeJSON, http.StatusRequestEntityTooLarge, CodePayloadTooLarge,
			fmt.Sprintf("the request body exceeds %d bytes", s.maxBody))
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{})
	_ = rc.SetReadDeadline(time.Time{})
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	// A stream the server ends (shutting down, the session over) must not end with
	// `complete`, which tells the client the subscription is finished (the order reached
	// a final state): gqlgen writes it whenever the context ends. Cut, the stream stops
	// without it, and the client reconnects with afterSeq (or learns its session ended).
	cw := &cutWriter{ResponseWriter: w}
	cut := func() { cw.cut(); cancel() }
	if s.done != nil {
		stop := context.AfterFunc(s.done, cut)
		defer stop()
	}
	if _, ok := auth.FromContext(ctx); ok {
		_, token, _ := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
		go s.watchSession(ctx, strings.TrimSpace(token), func(string) { cut() })
	}
	transport.SSE{KeepAlivePingInterval: s.opts.KeepAlive}.Do(cw, r.WithContext(ctx), subscriptionsOnly{exec})
}

// cutWriter drops every write once cut: what gqlgen writes after the server ended the
// stream (its `complete`, a keep-alive) never reaches the client.
type cutWriter struct {
	http.ResponseWriter
	off atomic.Bool // no lock: a write stuck on a client that stopped reading must not hold up the cut
}

func (c *cutWriter) cut() { c.off.Store(true) }

func (c *cutWriter) Write(p []byte) (int, error) {
	if c.off.Load() {
		return 0, errStreamCut
	}
	return c.ResponseWriter.Write(p)
}

func (c *cutWriter) WriteHeader(code int) {
	if !c.off.Load() {
		c.ResponseWriter.WriteHeader(code)
	}
}

func (c *cutWriter) Flush() {
	if !c.off.Load() {
		_ = http.NewResponseController(c.ResponseWriter).Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (c *cutWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

var errStreamCut = errors.New("the server ended the stream")

// streamLoaders gives each message of a subscription fresh loaders: the connection's
// would cache books and order events for as long as it stays open.
type streamLoaders struct {
	db   *store.DB
	opts loaders.Options
}

func (streamLoaders) ExtensionName() string                   { return "StreamLoaders" }
func (streamLoaders) Validate(graphql.ExecutableSchema) error { return nil }

func (l streamLoaders) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	if graphql.HasOperationContext(ctx) {
		if op := graphql.GetOperationContext(ctx).Operation; op != nil && op.Operation == ast.Subscription {
			return next(loaders.With(ctx, loaders.New(l.db, l.opts)))
		}
	}
	return next(ctx)
}
