package mail_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"math/big"
	"mime"
	"mime/multipart"
	"net"
	netmail "net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// An SMTP server in the test process (emersion/go-smtp, the server half of a real MTA
// library), so the client's STARTTLS, AUTH and envelope are checked against a real
// implementation of the protocol, not against a recording of what we think it says.

type serverConfig struct {
	startTLS    bool // advertise STARTTLS (with a self-signed certificate)
	implicitTLS bool // TLS from the first byte (smtps)
	user, pass  string
	// insecureAuth offers AUTH before TLS (a server a man in the middle stripped).
	insecureAuth bool
	rejectRcpt   func(to string) error
}

type envelope struct {
	from  string
	rcpts []string
	data  []byte
	user  string // who authenticated, "" if nobody
	tls   bool   // the message came over TLS
}

type testServer struct {
	addr string // host:port
	host string
	port string
	ca   *x509.CertPool // trusts the server's certificate

	cfg serverConfig

	mu       sync.Mutex
	mails    []envelope
	sessions int
	auths    int // AUTH attempts, successful or not
}

func (s *testServer) received() []envelope {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]envelope(nil), s.mails...)
}

func (s *testServer) counts() (sessions, auths int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions, s.auths
}

func startServer(t testing.TB, cfg serverConfig) *testServer {
	t.Helper()
	ts := &testServer{cfg: cfg}
	cert, pool := selfSigned(t)
	ts.ca = pool
	be := smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		ts.mu.Lock()
		ts.sessions++
		ts.mu.Unlock()
		return &session{s: ts, conn: c}, nil
	})
	srv := smtp.NewServer(be)
	srv.Domain = "mx.test"
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	srv.MaxMessageBytes = 4 << 20
	srv.MaxRecipients = 10
	srv.AllowInsecureAuth = cfg.insecureAuth
	srv.ErrorLog = log.New(io.Discard, "", 0)
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if cfg.startTLS {
		srv.TLSConfig = tlsCfg
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.implicitTLS {
		l = tls.NewListener(l, tlsCfg)
	}
	ts.addr = l.Addr().String()
	ts.host, ts.port, _ = net.SplitHostPort(ts.addr)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return ts
}

type session struct {
	s    *testServer
	conn *smtp.Conn
	cur  envelope
}

func (x *session) AuthMechanisms() []string {
	if x.s.cfg.user == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (x *session) Auth(mech string) (sasl.Server, error) {
	x.s.mu.Lock()
	x.s.auths++
	x.s.mu.Unlock()
	return sasl.NewPlainServer(func(identity, user, pass string) error {
		if user != x.s.cfg.user || pass != x.s.cfg.pass {
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "bad credentials"}
		}
		x.cur.user = user
		return nil
	}), nil
}

func (x *session) Mail(from string, _ *smtp.MailOptions) error {
	if x.s.cfg.user != "" && x.cur.user == "" {
		return smtp.ErrAuthRequired
	}
	x.cur.from = from
	return nil
}

func (x *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if f := x.s.cfg.rejectRcpt; f != nil {
		if err := f(to); err != nil {
			return err
		}
	}
	x.cur.rcpts = append(x.cur.rcpts, to)
	return nil
}

func (x *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	e := x.cur
	e.data = b
	_, e.tls = x.conn.TLSConnectionState()
	x.s.mu.Lock()
	x.s.mails = append(x.s.mails, e)
	x.s.mu.Unlock()
	return nil
}

func (x *session) Reset() {
	user := x.cur.user
	x.cur = envelope{user: user}
}

func (x *session) Logout() error { return nil }

// selfSigned makes a CA-flagged certificate for 127.0.0.1 and localhost and a pool that
// trusts it: the client trusts it through WithTLSConfig, with verification left on.
func selfSigned(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "mail test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: c}, pool
}

// parsed is a received message taken apart the way a mail client would.
type parsed struct {
	header netmail.Header
	text   string
	html   string
}

func parse(t testing.TB, raw []byte) parsed {
	t.Helper()
	m, err := netmail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("not RFC 5322: %v\n%s", err, raw)
	}
	p := parsed{header: m.Header}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("Content-Type %q (%v), want multipart/alternative", m.Header.Get("Content-Type"), err)
	}
	// multipart.Reader undoes quoted-printable, so the bodies compare as written.
	r := multipart.NewReader(m.Body, params["boundary"])
	for {
		part, err := r.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(part)
		if err != nil {
			t.Fatal(err)
		}
		ct, ps, _ := mime.ParseMediaType(part.Header.Get("Content-Type"))
		if ps["charset"] != "UTF-8" {
			t.Errorf("part %s charset %q", ct, ps["charset"])
		}
		switch ct {
		case "text/plain":
			p.text = string(b)
		case "text/html":
			p.html = string(b)
		default:
			t.Fatalf("unexpected part %s", ct)
		}
	}
	if p.text == "" || p.html == "" {
		t.Fatalf("want a text and an HTML part, got text %d bytes, html %d bytes", len(p.text), len(p.html))
	}
	return p
}

// headerLines are the raw header lines (unfolded), to catch a header the parser would merge.
func headerLines(raw []byte) []string {
	head, _, _ := strings.Cut(string(raw), "\r\n\r\n")
	head = strings.ReplaceAll(head, "\r\n ", " ")
	head = strings.ReplaceAll(head, "\r\n\t", " ")
	return strings.Split(head, "\r\n")
}
