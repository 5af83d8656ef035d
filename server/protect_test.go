package server_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shopfront/bookstore/auth"
	"github.com/shopfront/bookstore/internal/testdb"
	"github.com/shopfront/bookstore/server"
)

func TestParseOrigins(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		err  bool
	}{
		{in: "", want: nil},
		{in: " https://Shop.Example.com , http://localhost:5173 ", want: []string{"https://shop.example.com", "http://localhost:5173"}},
		{in: "https://*.example.com", want: []string{"https://*.example.com"}},
		{in: "*", want: []string{"*"}},
		{in: "shop.example.com", err: true},
		{in: "https://shop.example.com/", err: true},
		{in: "https://shop.example.com/app", err: true},
		{in: "https://user:pw@shop.example.com", err: true},
		{in: "ftp://shop.example.com", err: true},
		{in: "https://*.*.example.com", err: true},
		{in: "https://shop.example.com?x=1", err: true},
	} {
		got, err := server.ParseOrigins(tc.in)
		if (err != nil) != tc.err || strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("ParseOrigins(%q) = %q, %v", tc.in, got, err)
		}
	}
}

func TestPerMinuteLimit(t *testing.T) {
	l, ok, err := server.PerMinuteLimit(600, 0)
	if err != nil || !ok || l != (auth.Limit{Rate: 600, Period: time.Minute, Burst: 100}) {
		t.Fatalf("PerMinuteLimit(600, 0) = %+v %v %v", l, ok, err)
	}
	if l, ok, err = server.PerMinuteLimit(3, 0); err != nil || !ok || l.Burst != 1 {
		t.Fatalf("PerMinuteLimit(3, 0) = %+v %v %v", l, ok, err)
	}
	if l, ok, err = server.PerMinuteLimit(60, 500); err != nil || !ok || l.Burst != 500 {
		t.Fatalf("PerMinuteLimit(60, 500) = %+v %v %v", l, ok, err)
	}
	if _, ok, err = server.PerMinuteLimit(0, 0); err != nil || ok {
		t.Fatalf("PerMinuteLimit(0, 0): %v %v, want no limit", ok, err)
	}
	if _, _, err = server.PerMinuteLimit(-1, 0); err == nil {
		t.Fatal("a negative rate was accepted")
	}
}

func TestLoadPersistedQueries(t *testing.T) {
	dir := t.TempDir()
	const q = `query Page { books(first: 3) { totalCount } }`
	write := func(name string, v any) string {
		b, _ := json.Marshal(v)
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	m, err := server.LoadPersistedQueries(write("ok.json", map[string]string{strings.ToUpper(sha256Hex(q)): q}))
	if err != nil || m[sha256Hex(q)] != q {
		t.Fatalf("a good manifest: %v %v", m, err)
	}
	if _, err := server.LoadPersistedQueries(write("stale.json", map[string]string{sha256Hex(q): q + " "})); err == nil {
		t.Fatal("a hash that is not its query's was accepted")
	}
	if _, err := server.LoadPersistedQueries(write("list.json", []string{q})); err == nil {
		t.Fatal("a list was accepted as a manifest")
	}
	if _, err := server.LoadPersistedQueries(filepath.Join(dir, "missing.json")); err == nil {
		t.Fatal("a missing file was accepted")
	}
}

// TestSecurityHeadersOnEveryResponse: nosniff, no referrer, no framing and a deny-all
// CSP on API responses, errors and health checks; the GraphiQL page keeps its own CSP
// (which lets it load its own scripts); no HSTS over plain HTTP.
func TestSecurityHeadersOnEveryResponse(t *testing.T) {
	a := newAPI(t, 1)
	h := newHClient(t, a.url)
	for _, r := range []hresp{
		h.send(hreq{method: http.MethodGet, path: "/healthz"}),
		h.gql(`{ books(first: 1) { totalCount } }`, nil),
		h.send(hreq{contentType: "text/plain", body: []byte("x")}),
		h.send(hreq{method: http.MethodGet, path: "/nowhere"}),
	} {
		for k, want := range map[string]string{
			"X-Content-Type-Options":  "nosniff",
			"Referrer-Policy":         "no-referrer",
			"X-Frame-Options":         "DENY",
			"Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
		} {
			if got := r.header.Get(k); got != want {
				t.Errorf("%d response: %s = %q, want %q", r.status, k, got, want)
			}
		}
		if r.header.Get("Strict-Transport-Security") != "" {
			t.Errorf("HSTS over plain HTTP")
		}
	}
	page := h.send(hreq{method: http.MethodGet, path: "/"})
	if csp := page.header.Get("Content-Security-Policy"); page.status != 200 || !strings.Contains(csp, "script-src 'self'") {
		t.Fatalf("GraphiQL page: %d, CSP %q", page.status, csp)
	}
}

// TestTLS serves the real handler with server.TLSConfig as `bookstore serve --tls-cert
// --tls-key` does: HTTPS with HSTS, nothing below TLS 1.2, and a renewed certificate
// served from the next connection on (a broken renewal keeps the previous one).
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	pool := x509.NewCertPool()
	issue := func(serial int64) {
		t.Helper()
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: "bookstore test"},
			IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		cert, _ := x509.ParseCertificate(der)
		pool.AddCert(cert)
		keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
		if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		// A renewal a second later has another modification time on any file system.
		later := time.Now().Add(time.Duration(serial) * time.Second)
		_ = os.Chtimes(certFile, later, later)
		_ = os.Chtimes(keyFile, later, later)
	}
	issue(1)
	cfg, err := server.TLSConfig(certFile, keyFile, discardLog())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS12 {
		t.Fatalf("MinVersion %x", cfg.MinVersion)
	}
	keys, _ := auth.DevKeyring()
	srv := &http.Server{
		Handler:   server.New(server.Config{DB: testdb.New(t), Log: discardLog(), Tokens: auth.NewTokens(keys, auth.TokenConfig{})}),
		TLSConfig: cfg,
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { srv.Close() })
	url := "https://" + ln.Addr().String()

	get := func(maxVersion uint16) (*http.Response, error) {
		tr := &http.Transport{DisableKeepAlives: true, TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS10, MaxVersion: maxVersion}}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(url + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return resp, err
	}
	resp, err := get(0)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Strict-Transport-Security") != server.HSTS || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("over TLS: %d %v", resp.StatusCode, resp.Header)
	}
	if _, err := get(tls.VersionTLS11); err == nil || !strings.Contains(err.Error(), "protocol version") {
		t.Fatalf("a TLS 1.1 client: %v, want the server to refuse the protocol version", err)
	}
	serial := func() int64 {
		t.Helper()
		resp, err := get(0)
		if err != nil {
			t.Fatal(err)
		}
		return resp.TLS.PeerCertificates[0].SerialNumber.Int64()
	}
	if s := serial(); s != 1 {
		t.Fatalf("serial %d, want 1", s)
	}
	issue(2)
	if s := serial(); s != 2 {
		t.Fatalf("after renewal: serial %d, want 2", s)
	}
	if err := os.WriteFile(certFile, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if s := serial(); s != 2 {
		t.Fatalf("after a broken renewal: serial %d, want the previous 2", s)
	}
	if _, err := server.TLSConfig(filepath.Join(dir, "missing.pem"), keyFile, nil); err == nil {
		t.Fatal("TLSConfig accepted a missing certificate")
	}
}

// TestProtectionSettingsReachTheEndpoint: the body limit, persisted-only mode and the
// shape limits given in server.Config are the ones the endpoint applies.
func TestProtectionSettingsReachTheEndpoint(t *testing.T) {
	const page = `query Page { books(first: 1) { totalCount } }`
	repeated := `{ ` + strings.Repeat("__typename ", 150) + `}` // over MaxRepeatedFields
	manifest := map[string]string{sha256Hex(page): page, sha256Hex(repeated): repeated}

	t.Run("body limit", func(t *testing.T) {
		a := newAPIWith(t, 1, func(c *server.Config) { c.ResponseTTL = -1; c.MaxBodyBytes = 1024 })
		h := newHClient(t, a.url)
		refused(t, h.gql(`{ search(query: "`+strings.Repeat("a", 2000)+`") { totalCount } }`, nil), 413, server.CodePayloadTooLarge)
		if r := h.gql(page, nil); r.status != 200 || len(r.errors) > 0 {
			t.Fatalf("a small request: %d %s", r.status, r.raw)
		}
	})
	t.Run("persisted only", func(t *testing.T) {
		a := newAPIWith(t, 1, func(c *server.Config) {
			c.ResponseTTL = -1
			c.PersistedQueries, c.PersistedOnly = manifest, true
		})
		h := newHClient(t, a.url)
		for _, body := range []map[string]any{
			{"query": page},
			{"extensions": map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": sha256Hex(page)}}},
		} {
			b, _ := json.Marshal(body)
			if r := h.send(hreq{body: b}); r.status != 200 || len(r.errors) > 0 {
				t.Fatalf("a manifest operation: %d %s", r.status, r.raw)
			}
		}
		refused(t, h.gql(`{ books(first: 2) { totalCount } }`, nil), 403, server.CodePersistedQueryRequired)
		// The manifest is trusted: its documents skip the validation guard.
		if r := h.gql(repeated, nil); r.status != 200 || len(r.errors) > 0 {
			t.Fatalf("a manifest document over the guard's limits: %d %s", r.status, r.raw)
		}
	})
	t.Run("guard applies outside the manifest", func(t *testing.T) {
		a := newAPIWith(t, 1, func(c *server.Config) { c.ResponseTTL = -1; c.PersistedQueries = manifest })
		h := newHClient(t, a.url)
		refused(t, h.gql(repeated+" ", nil), 400, "GRAPHQL_VALIDATION_FAILED")
		if r := h.gql(repeated, nil); r.status != 200 || len(r.errors) > 0 {
			t.Fatalf("the manifest's own text: %d %s", r.status, r.raw)
		}
	})
	t.Run("shape limits", func(t *testing.T) {
		deep := `{ categories { ` + nested("children", 20, "slug") + ` } }`
		three := `{ a: books(first: 1) { totalCount } b: books(first: 1) { totalCount } c: books(first: 1) { totalCount } }`
		a := newAPIWith(t, 1, func(c *server.Config) { c.ResponseTTL = -1; c.MaxAliases = 2; c.MaxDepth = -1 })
		h := newHClient(t, a.url)
		refused(t, h.gql(three, nil), 400, server.CodeAliasLimitExceeded)
		if r := h.gql(deep, nil); r.status != 200 || len(r.errors) > 0 {
			t.Fatalf("MaxDepth -1 still limits depth: %d %.300s", r.status, r.raw)
		}
		b := newAPIWith(t, 1, func(c *server.Config) { c.ResponseTTL = -1; c.MaxTokens = 10 })
		refused(t, newHClient(t, b.url).gql(three, nil), 400, "GRAPHQL_PARSE_FAILED")
	})
}

// TestClientKeysBehindProxies: the per-IP budget keys on the address clientIP resolved,
// never on a client-written X-Forwarded-For when the peer is not a trusted proxy.
func TestClientKeysBehindProxies(t *testing.T) {
	lim, err := auth.NewLocalLimiter(auth.Limit{Rate: 1, Period: time.Minute, Burst: 1}, auth.LocalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a := newAPIWith(t, 0, func(c *server.Config) {
		c.ResponseTTL = -1
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")} // not the test client
		c.RateLimit = server.RateLimit{PerIP: lim}
	})
	h := newHClient(t, a.url)
	if r := h.gql(`{ __typename }`, nil); r.status != 200 {
		t.Fatalf("first request: %d", r.status)
	}
	// A fresh X-Forwarded-For per request does not buy a fresh budget.
	r := h.gql(`{ __typename }`, nil, func(q *hreq) { q.header = http.Header{"X-Forwarded-For": {"203.0.113.9"}} })
	refused(t, r, http.StatusTooManyRequests, "RATE_LIMITED")
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
