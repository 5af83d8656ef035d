package mail_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	netmail "net/mail"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/shopfront/bookstore/mail"
)

const from = "Bookstore <orders@shop.example>"

func smtpURL(scheme string, ts *testServer, query string) string {
	u := url.URL{Scheme: scheme, Host: ts.addr, RawQuery: query}
	if ts.cfg.user != "" {
		u.User = url.UserPassword(ts.cfg.user, ts.cfg.pass)
	}
	return u.String()
}

func sender(t testing.TB, raw string, trust bool, ts *testServer) *mail.SMTP {
	t.Helper()
	var opts []mail.SMTPOption
	if trust {
		opts = append(opts, mail.WithTLSConfig(&tls.Config{RootCAs: ts.ca}))
	}
	s, err := mail.FromURL(raw, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSMTPStartTLSAuthPlain is the production path: STARTTLS (required by default) with a
// certificate trusted through WithTLSConfig, AUTH PLAIN, then the message. The server only
// offers AUTH after TLS, so a login here also proves the upgrade happened.
func TestSMTPStartTLSAuthPlain(t *testing.T) {
	t.Parallel()
	ts := startServer(t, serverConfig{startTLS: true, user: "orders@shop.example", pass: "p@ss:w/rd"})
	s := sender(t, smtpURL("smtp", ts, "timeout=10s"), true, ts)

	m, err := mail.OrderConfirmation(sampleOrder(), from)
	if err != nil {
		t.Fatal(err)
	}
	m.To = append(m.To, netmail.Address{Name: "Books Team", Address: "team@shop.example"})
	m.Date = time.Date(2026, 12, 2, 9, 30, 0, 0, time.FixedZone("CET", 3600))
	if err := s.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}

	got := ts.received()
	if len(got) != 1 {
		t.Fatalf("server received %d messages, want 1", len(got))
	}
	e := got[0]
	if e.from != "orders@shop.example" || !slices.Equal(e.rcpts, []string{"ann@example.com", "team@shop.example"}) {
		t.Errorf("envelope from %q to %q", e.from, e.rcpts)
	}
	if !e.tls || e.user != "orders@shop.example" {
		t.Errorf("tls %v, authenticated as %q", e.tls, e.user)
	}
	p := parse(t, e.data)
	h := p.header
	if fs, err := h.AddressList("From"); err != nil || len(fs) != 1 || fs[0].Address != "orders@shop.example" || fs[0].Name != "Bookstore" {
		t.Errorf("From %q (%v)", h.Get("From"), err)
	}
	if to, err := h.AddressList("To"); err != nil || len(to) != 2 || to[0].Address != "ann@example.com" || to[0].Name != "Ann Lee" || to[1].Address != "team@shop.example" {
		t.Errorf("To %q (%v)", h.Get("To"), err)
	}
	if h.Get("Subject") != "Your order BK-1042 is confirmed" {
		t.Errorf("Subject %q", h.Get("Subject"))
	}
	if h.Get("Message-Id") != m.MessageID() || !strings.HasSuffix(m.MessageID(), "@shop.example>") {
		t.Errorf("Message-ID %q, want %q", h.Get("Message-Id"), m.MessageID())
	}
	if d, err := h.Date(); err != nil || !d.Equal(m.Date) {
		t.Errorf("Date %q (%v), want %v", h.Get("Date"), err, m.Date)
	}
	if h.Get("Mime-Version") != "1.0" || h.Get("Auto-Submitted") != "auto-generated" {
		t.Errorf("MIME-Version %q, Auto-Submitted %q", h.Get("Mime-Version"), h.Get("Auto-Submitted"))
	}
	if h.Get("User-Agent") != "" || h.Get("X-Mailer") != "" {
		t.Errorf("the mailer announces itself: %q %q", h.Get("User-Agent"), h.Get("X-Mailer"))
	}
	for _, want := range []string{"Hello Ann Lee,", "BK-1042", "2 x The Left Hand of Darkness @ $14.99 = $29.98", "Total:    $43.84", "Springfield, IL 62701"} {
		if !strings.Contains(p.text, want) {
			t.Errorf("text part lacks %q:\n%s", want, p.text)
		}
	}
	for _, want := range []string{"<td>The Left Hand of Darkness</td>", "<strong>$43.84</strong>", `href="https://shop.example/orders/BK-1042"`} {
		if !strings.Contains(p.html, want) {
			t.Errorf("html part lacks %q:\n%s", want, p.html)
		}
	}
}

// TestSMTPImplicitTLS: smtps:// speaks TLS from the first byte (port 465 style).
func TestSMTPImplicitTLS(t *testing.T) {
	t.Parallel()
	ts := startServer(t, serverConfig{implicitTLS: true, user: "u", pass: "secret"})
	s := sender(t, smtpURL("smtps", ts, ""), true, ts)
	m := plainMessage("smtps/1")
	if err := s.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	got := ts.received()
	if len(got) != 1 || !got[0].tls || got[0].user != "u" {
		t.Fatalf("received %+v", got)
	}
}

// TestSMTPVerifiesCertificate: without the CA the client refuses the server, whether the
// TLS starts at once or through STARTTLS, and no password or message goes out.
func TestSMTPVerifiesCertificate(t *testing.T) {
	t.Parallel()
	for _, scheme := range []string{"smtp", "smtps"} {
		t.Run(scheme, func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, serverConfig{startTLS: scheme == "smtp", implicitTLS: scheme == "smtps", user: "u", pass: "secret"})
			s := sender(t, smtpURL(scheme, ts, ""), false, ts)
			err := s.Send(context.Background(), plainMessage("untrusted"))
			var verr *tls.CertificateVerificationError
			var unknown x509.UnknownAuthorityError
			if !errors.As(err, &verr) || !errors.As(verr.Err, &unknown) {
				t.Fatalf("err %v, want an unknown-authority certificate error", err)
			}
			if _, auths := ts.counts(); auths != 0 || len(ts.received()) != 0 {
				t.Fatalf("%d AUTH attempts, %d messages over an untrusted connection", auths, len(ts.received()))
			}
		})
	}
}

// TestSMTPStartTLSRequired: a server (or a man in the middle) that offers no STARTTLS but
// happily takes AUTH in the clear gets neither the password nor the mail, unless the URL
// says starttls=none.
func TestSMTPStartTLSRequired(t *testing.T) {
	t.Parallel()
	ts := startServer(t, serverConfig{insecureAuth: true, user: "u", pass: "secret"})
	s := sender(t, smtpURL("smtp", ts, ""), true, ts)
	err := s.Send(context.Background(), plainMessage("stripped"))
	if err == nil || !strings.Contains(err.Error(), "STARTTLS") {
		t.Fatalf("err %v, want one about STARTTLS", err)
	}
	if _, auths := ts.counts(); auths != 0 || len(ts.received()) != 0 {
		t.Fatalf("%d AUTH attempts, %d messages without TLS", auths, len(ts.received()))
	}

	// Opted out explicitly (a local catcher): plain text is then allowed, to loopback only
	// (go-mail's PLAIN refuses an unencrypted remote host).
	s = sender(t, smtpURL("smtp", ts, "starttls=none"), true, ts)
	if err := s.Send(context.Background(), plainMessage("clear")); err != nil {
		t.Fatal(err)
	}
	if got := ts.received(); len(got) != 1 || got[0].tls || got[0].user != "u" {
		t.Fatalf("received %+v", got)
	}
}

// TestSMTPRefusals: what the server refuses comes back as an error naming the command and
// the recipient, and Permanent tells a bounce (5xx: park it) from a deferral (4xx: retry).
func TestSMTPRefusals(t *testing.T) {
	t.Parallel()
	ts := startServer(t, serverConfig{startTLS: true, user: "u", pass: "secret", rejectRcpt: func(to string) error {
		switch to {
		case "nobody@example.com":
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "<" + to + ">: no such user"}
		case "busy@example.com":
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
		}
		return nil
	}})
	s := sender(t, smtpURL("smtp", ts, ""), true, ts)
	for _, tc := range []struct {
		rcpt      string
		code      string
		permanent bool
	}{
		{"nobody@example.com", "550", true},
		{"busy@example.com", "451", false},
	} {
		m := plainMessage("refused/" + tc.code)
		m.To = []netmail.Address{{Address: tc.rcpt}}
		err := s.Send(context.Background(), m)
		if err == nil {
			t.Fatalf("%s: sent", tc.rcpt)
		}
		// The address is customer PII: the error (bound for logs and the outbox's
		// last_error) shows only enough of it to tell recipients apart.
		msg := err.Error()
		for _, want := range []string{"RCPT TO", tc.code, tc.rcpt[:1] + "***@example.com", m.Key} {
			if !strings.Contains(msg, want) {
				t.Errorf("%s: error %q lacks %q", tc.rcpt, msg, want)
			}
		}
		if strings.Contains(msg, tc.rcpt) {
			t.Errorf("error %q shows the recipient's address", msg)
		}
		if got := mail.Permanent(err); got != tc.permanent {
			t.Errorf("%s: Permanent = %v, want %v (%v)", tc.rcpt, got, tc.permanent, err)
		}
		if got := mail.Refused(err); got != tc.permanent {
			t.Errorf("%s: Refused = %v, want %v (%v)", tc.rcpt, got, tc.permanent, err)
		}
	}
	if n := len(ts.received()); n != 0 {
		t.Fatalf("%d messages delivered", n)
	}

	// A wrong password is permanent too, and the error does not repeat it.
	u, _ := url.Parse(smtpURL("smtp", ts, ""))
	u.User = url.UserPassword("u", "WrongHorseBattery")
	s = sender(t, u.String(), true, ts)
	err := s.Send(context.Background(), plainMessage("badpass"))
	if err == nil || !strings.Contains(err.Error(), "535") || strings.Contains(err.Error(), "WrongHorseBattery") {
		t.Fatalf("err %v, want a 535 without the password", err)
	}
	if !mail.Permanent(err) {
		t.Errorf("bad credentials not permanent: %v", err)
	}
	// ... but no refusal of this message: every email would fail the same way until the
	// operator fixes SMTP_URL, so none is parked for it.
	if mail.Refused(err) {
		t.Errorf("bad credentials count as a refusal of the message: %v", err)
	}
}

// TestSMTPServerDown: nothing listening fails at once and is temporary; a server that
// accepts and never greets fails within the URL's timeout; a cancelled context ends the
// session at once even with a long timeout.
func TestSMTPServerDown(t *testing.T) {
	t.Parallel()
	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		s, err := mail.FromURL("smtp://" + addr + "?timeout=2s")
		if err != nil {
			t.Fatal(err)
		}
		err = s.Send(context.Background(), plainMessage("down"))
		if err == nil || !strings.Contains(err.Error(), "refused") || mail.Permanent(err) {
			t.Fatalf("err %v, want a temporary connection refused", err)
		}
	})

	silent := func(t *testing.T) string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				t.Cleanup(func() { c.Close() }) // hold it open, say nothing
			}
		}()
		return l.Addr().String()
	}
	t.Run("silent", func(t *testing.T) {
		t.Parallel()
		s, err := mail.FromURL("smtp://" + silent(t) + "?timeout=1s")
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		err = s.Send(context.Background(), plainMessage("silent"))
		if took := time.Since(start); err == nil || took > 10*time.Second {
			t.Fatalf("err %v after %v, want an error after the 1s timeout", err, took)
		}
		if mail.Permanent(err) {
			t.Errorf("a timeout is not permanent: %v", err)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		t.Parallel()
		s, err := mail.FromURL("smtp://" + silent(t) + "?timeout=5m")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		err = s.Send(ctx, plainMessage("cancelled"))
		if took := time.Since(start); err == nil || took > 10*time.Second || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err %v after %v, want the context's deadline", err, took)
		}
	})
}

// TestSMTPHeaderInjection: a customer's name with CR/LF cannot add a header or a
// recipient; a Message whose own header carries CR/LF is refused before any connection.
func TestSMTPHeaderInjection(t *testing.T) {
	t.Parallel()
	ts := startServer(t, serverConfig{startTLS: true})
	s := sender(t, smtpURL("smtp", ts, ""), true, ts)

	o := sampleOrder()
	o.Name = "Eve\r\nBcc: victim@evil.example\r\n\r\n<b>owned</b>"
	o.Number = "BK-7\nX-Injected: 1"
	o.Lines[0].Title = "<script>alert(1)</script>\r\nCc: cc@evil.example"
	m, err := mail.OrderConfirmation(o, from)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	got := ts.received()
	if len(got) != 1 || !slices.Equal(got[0].rcpts, []string{"ann@example.com"}) {
		t.Fatalf("received %+v", got)
	}
	for _, l := range headerLines(got[0].data) {
		name, _, _ := strings.Cut(l, ":")
		switch strings.ToLower(name) {
		case "bcc", "cc", "x-injected":
			t.Errorf("injected header line %q", l)
		}
	}
	p := parse(t, got[0].data)
	to, err := p.header.AddressList("To")
	if err != nil || len(to) != 1 || to[0].Name != "Eve Bcc: victim@evil.example <b>owned</b>" {
		t.Errorf("To %q (%v)", p.header.Get("To"), err)
	}
	if s := p.header.Get("Subject"); s != "Your order BK-7 X-Injected: 1 is confirmed" {
		t.Errorf("Subject %q", s)
	}
	if strings.Contains(p.html, "<script>") || !strings.Contains(p.html, "<td>&lt;script&gt;alert(1)&lt;/script&gt; Cc: cc@evil.example</td>") {
		t.Errorf("title not escaped in HTML:\n%s", p.html)
	}
	if !strings.Contains(p.text, "2 x <script>alert(1)</script> Cc: cc@evil.example @ $14.99") {
		t.Errorf("title not on one line in the text part:\n%s", p.text)
	}
	if strings.Contains(p.html, "<b>owned</b>") || !strings.Contains(p.html, "&lt;b&gt;owned&lt;/b&gt;") {
		t.Errorf("name not escaped in HTML:\n%s", p.html)
	}

	sessions, _ := ts.counts()
	for name, mut := range map[string]func(*mail.Message){
		"subject":      func(m *mail.Message) { m.Subject = "Hi\r\nBcc: victim@evil.example" },
		"to name":      func(m *mail.Message) { m.To[0].Name = "Eve\nBcc: victim@evil.example" },
		"from name":    func(m *mail.Message) { m.From.Name = "Shop\rBcc: x@evil.example" },
		"to address":   func(m *mail.Message) { m.To[0].Address = "a@example.com\r\nBcc: x@evil.example" },
		"extra header": func(m *mail.Message) { m.Header = map[string]string{"X-Tag": "a\r\nBcc: x@evil.example"} },
		"bcc header":   func(m *mail.Message) { m.Header = map[string]string{"bcc": "x@evil.example"} },
	} {
		m := plainMessage("inject/" + strings.ReplaceAll(name, " ", "-"))
		mut(&m)
		err := s.Send(context.Background(), m)
		if !errors.Is(err, mail.ErrInvalid) || !mail.Permanent(err) {
			t.Errorf("%s: err %v, want ErrInvalid", name, err)
		}
	}
	if after, _ := ts.counts(); after != sessions || len(ts.received()) != 1 {
		t.Fatalf("invalid messages reached the server: %d sessions before, %d after", sessions, after)
	}
}

// TestSMTPConcurrentSends: one SMTP value serves many goroutines (the outbox consumer may
// run several) and every message arrives once with its own Message-ID.
func TestSMTPConcurrentSends(t *testing.T) {
	t.Parallel()
	ts := startServer(t, serverConfig{startTLS: true, user: "u", pass: "secret"})
	s := sender(t, smtpURL("smtp", ts, ""), true, ts)
	const n = 16
	errs := make(chan error, n)
	for i := range n {
		go func() { errs <- s.Send(context.Background(), plainMessage(fmt.Sprintf("concurrent/%d", i))) }()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	ids := map[string]bool{}
	for _, e := range ts.received() {
		ids[parse(t, e.data).header.Get("Message-Id")] = true
	}
	if len(ids) != n {
		t.Fatalf("%d distinct messages, want %d", len(ids), n)
	}
}

func TestFromURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url, want string // want: String(), or the start of the error after "SMTP_URL"
		ok        bool
	}{
		{"smtp://user:s3cret@mail.example.com:2525", "smtp://user:xxxxx@mail.example.com:2525", true},
		{"smtps://apikey:s3cret@mail.example.com", "smtps://apikey:xxxxx@mail.example.com", true},
		{"smtp://127.0.0.1:1025?starttls=none", "smtp://127.0.0.1:1025?starttls=none", true},
		{"smtp://u:s3cret@[::1]:25?starttls=opportunistic&timeout=5s&auth=login&helo=shop.example", "smtp://u:xxxxx@[::1]:25?starttls=opportunistic&timeout=5s&auth=login&helo=shop.example", true},
		{"smtp://u%40x:s3cret%2F%40@h", "smtp://u%40x:xxxxx@h", true},
		{"http://u:s3cret@h", "scheme", false},
		{"smtp://u:s3cret@h:99999", "bad port", false},
		{"smtp://u:s3cret@h:x", "not a URL", false},
		{"smtp://u:s3cret@:25", "no host", false},
		{"smtp://u:s3cret@h/path", "no path", false},
		{"smtp://u:s3cret@h?starttls=maybe", "starttls must", false},
		{"smtps://u:s3cret@h?starttls=required", "starttls does not apply", false},
		{"smtp://u:s3cret@h?timeout=10ms", "timeout", false},
		{"smtp://u:s3cret@h?timeout=1h", "timeout", false},
		{"smtp://u:s3cret@h?auth=ntlm", "auth must", false},
		{"smtps://u:s3cret@h?auth=auto", "auth must", false},
		{"smtp://h?auth=plain", "auth=plain needs a user", false},
		{"smtp://u:s3cret@h?tls=yes", "unknown option", false},
		{"smtp://u:s3cret@h?timeout=1s&timeout=2s", "given 2 times", false},
		{"smtp://:s3cret@h", "empty user", false},
		{"smtp://u:s3cret@h?helo=a%0d%0aRCPT", "bad helo", false},
		{"smtp://u:s3cret@h%0d%0a:25", "not a URL", false},
	} {
		s, err := mail.FromURL(tc.url)
		if tc.ok {
			if err != nil {
				t.Errorf("%s: %v", tc.url, err)
				continue
			}
			if s.String() != tc.want {
				t.Errorf("%s: String() = %q, want %q", tc.url, s.String(), tc.want)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: accepted", tc.url)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "SMTP_URL") {
			t.Errorf("%s: error %q, want one about %q", tc.url, err, tc.want)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: error shows the password: %q", tc.url, err)
		}
	}
}
