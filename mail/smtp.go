package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	netmail "net/mail"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	gomail "github.com/wneessen/go-mail"
)

// SMTP sends through an SMTP server (a relay such as Postmark, SES or the company's MTA),
// one connection per message: mail is rare next to page views, and a fresh session cannot
// inherit a broken one's state.
type SMTP struct {
	host     string
	port     int
	user     string
	pass     string
	ssl      bool             // smtps: TLS from the first byte
	starttls gomail.TLSPolicy // smtp: whether STARTTLS is required
	auth     gomail.SMTPAuthType
	timeout  time.Duration
	helo     string
	tls      *tls.Config
	safe     string // the URL without its password, for logs and errors
}

// SMTPOption changes an SMTP sender built by FromURL.
type SMTPOption func(*SMTP)

// WithTLSConfig sets the TLS configuration for STARTTLS and smtps, e.g. to trust a private
// CA (RootCAs). ServerName defaults to the URL's host; certificates are always verified.
func WithTLSConfig(c *tls.Config) SMTPOption {
	return func(s *SMTP) { s.tls = c.Clone() }
}

// DefaultSMTPTimeout bounds a whole SMTP session (dial, TLS, AUTH, DATA) unless the URL's
// timeout says otherwise.
const DefaultSMTPTimeout = 30 * time.Second

// authTypes are the mechanisms a URL may name. No auto-discovery: go-mail's cannot see the
// TLS of a connection it did not dial (smtps goes through our dialer), so it would drop
// PLAIN and LOGIN there; and providers document which mechanism they take.
var authTypes = map[string]gomail.SMTPAuthType{
	"plain":         gomail.SMTPAuthPlain,
	"login":         gomail.SMTPAuthLogin,
	"cram-md5":      gomail.SMTPAuthCramMD5,
	"scram-sha-1":   gomail.SMTPAuthSCRAMSHA1,
	"scram-sha-256": gomail.SMTPAuthSCRAMSHA256,
}

// FromURL parses SMTP_URL:
//
//	smtp://user:pass@host:port?starttls=required   (port 587 by default)
//	smtps://user:pass@host:port                    (implicit TLS, port 465 by default)
//
// Query options: starttls=required|opportunistic|none (smtp only; default required, so a
// man in the middle who strips STARTTLS gets an error, not the password), timeout=30s
// (the whole session, 1s to 5m), auth=plain|login|cram-md5|scram-sha-1|scram-sha-256
// (default plain when the URL has a user, none without), helo=name. Percent-encode
// special characters of the user and password. Errors never contain the password.
func FromURL(raw string, opts ...SMTPOption) (*SMTP, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// url's errors quote the whole input, password included.
		return nil, errors.New("SMTP_URL: not a URL (expected smtp://user:pass@host:port)")
	}
	s := &SMTP{timeout: DefaultSMTPTimeout, starttls: gomail.TLSMandatory, auth: gomail.SMTPAuthNoAuth}
	safe := *u
	if u.User != nil {
		if _, has := u.User.Password(); has {
			safe.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	s.safe = safe.String()
	bad := func(format string, args ...any) error {
		return fmt.Errorf("SMTP_URL %s: %s", s.safe, fmt.Sprintf(format, args...))
	}
	switch u.Scheme {
	case "smtp":
		s.port = 587
	case "smtps":
		s.ssl, s.port = true, 465
	default:
		return nil, bad("scheme must be smtp or smtps")
	}
	if u.Opaque != "" || (u.Path != "" && u.Path != "/") || u.Fragment != "" {
		return nil, bad("no path or fragment allowed")
	}
	s.host = u.Hostname()
	if s.host == "" {
		return nil, bad("no host")
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return nil, bad("bad port")
		}
		s.port = n
	}
	if u.User != nil {
		s.user = u.User.Username()
		s.pass, _ = u.User.Password()
		if s.user == "" {
			return nil, bad("empty user name")
		}
		s.auth = gomail.SMTPAuthPlain
	}
	q := u.Query()
	for k, vs := range q {
		if len(vs) != 1 {
			return nil, bad("option %s given %d times", k, len(vs))
		}
		v := vs[0]
		switch k {
		case "starttls":
			if s.ssl {
				return nil, bad("starttls does not apply to smtps (TLS from the start)")
			}
			switch v {
			case "required":
				s.starttls = gomail.TLSMandatory
			case "opportunistic":
				s.starttls = gomail.TLSOpportunistic
			case "none":
				s.starttls = gomail.NoTLS
			default:
				return nil, bad("starttls must be required, opportunistic or none")
			}
		case "timeout":
			d, err := time.ParseDuration(v)
			if err != nil || d < time.Second || d > 5*time.Minute {
				return nil, bad("timeout must be a duration from 1s to 5m")
			}
			s.timeout = d
		case "auth":
			a, ok := authTypes[strings.ToLower(v)]
			if !ok {
				return nil, bad("auth must be plain, login, cram-md5, scram-sha-1 or scram-sha-256")
			}
			if u.User == nil {
				return nil, bad("auth=%s needs a user in the URL", v)
			}
			s.auth = a
		case "helo":
			if !token(v) {
				return nil, bad("bad helo name")
			}
			s.helo = v
		default:
			return nil, bad("unknown option %q", k)
		}
	}
	for _, o := range opts {
		o(s)
	}
	if s.tls == nil {
		s.tls = &tls.Config{}
	}
	if s.tls.ServerName == "" {
		s.tls.ServerName = s.host
	}
	s.tls.MinVersion = max(s.tls.MinVersion, tls.VersionTLS12)
	return s, nil
}

// String is the URL without its password.
func (s *SMTP) String() string { return s.safe }

// Send delivers m to its recipients. The context bounds the whole session, not only the
// dial: cancelling it closes the connection, so a stuck server cannot hold a shutdown.
func (s *SMTP) Send(ctx context.Context, m Message) error {
	g, err := m.render(time.Now())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	opts := []gomail.Option{
		gomail.WithPort(s.port),
		gomail.WithTimeout(s.timeout),
		gomail.WithTLSConfig(s.tls),
		gomail.WithDialContextFunc(s.dialer(ctx)),
	}
	if s.ssl {
		opts = append(opts, gomail.WithSSL())
	} else {
		opts = append(opts, gomail.WithTLSPolicy(s.starttls))
	}
	if s.auth != gomail.SMTPAuthNoAuth {
		opts = append(opts, gomail.WithSMTPAuth(s.auth), gomail.WithUsername(s.user), gomail.WithPassword(s.pass))
	}
	if s.helo != "" {
		opts = append(opts, gomail.WithHELO(s.helo))
	}
	c, err := gomail.NewClient(s.host, opts...)
	if err != nil {
		return fmt.Errorf("mail %s: smtp client for %s: %w", m.Key, s.addr(), err)
	}
	if err := c.DialAndSendWithContext(ctx, g); err != nil {
		if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
			err = fmt.Errorf("%w (%w)", err, cerr)
		}
		return &sendError{err: err, msg: fmt.Sprintf("mail %s via %s: %s", m.Key, s.addr(), redact(err.Error(), m.To))}
	}
	return nil
}

// sendError hides the recipients' addresses in its text: go-mail and most servers repeat
// them in errors, and the text goes to logs and to the outbox's last_error, where customer
// PII may not sit in clear. errors.As still reaches go-mail's error through Unwrap.
type sendError struct {
	err error
	msg string
}

func (e *sendError) Error() string { return e.msg }
func (e *sendError) Unwrap() error { return e.err }

// redact replaces each recipient address in s with its first character and domain
// ("a***@example.com"): enough to tell recipients and providers apart in a log.
func redact(s string, to []netmail.Address) string {
	for _, a := range to {
		local, domain, ok := strings.Cut(a.Address, "@")
		if !ok || local == "" {
			continue
		}
		_, n := utf8.DecodeRuneInString(local)
		s = strings.ReplaceAll(s, a.Address, local[:n]+"***@"+domain)
	}
	return s
}

func (s *SMTP) addr() string { return net.JoinHostPort(s.host, strconv.Itoa(s.port)) }

// dialer returns go-mail's dial function bound to the Send context. go-mail hands the dial
// function a context that ends when the dial does, so the connection is tied to ctx here:
// when ctx ends, the connection closes and any read or write in flight fails at once.
// Implicit TLS is done here too, because go-mail skips its own TLS dialer when given a
// dial function; the returned *tls.Conn tells go-mail the session is encrypted.
func (s *SMTP) dialer(ctx context.Context) gomail.DialContextFunc {
	return func(dctx context.Context, network, address string) (net.Conn, error) {
		var d net.Dialer
		var conn net.Conn
		var err error
		if s.ssl {
			td := tls.Dialer{NetDialer: &d, Config: s.tls}
			conn, err = td.DialContext(dctx, network, address)
		} else {
			conn, err = d.DialContext(dctx, network, address)
		}
		if err != nil {
			return nil, err
		}
		context.AfterFunc(ctx, func() { conn.Close() })
		return conn, nil
	}
}

// Refused reports whether err says the server refused this message for good: an invalid
// message, or a 5xx reply to RCPT TO (no such mailbox) or to the message itself (DATA,
// content). A 5xx at AUTH or MAIL FROM is Permanent too, but it is about the sender's
// configuration (a wrong password, a From the relay does not accept), not the message:
// every email fails the same way until SMTP_URL or MAIL_FROM is fixed, so an outbox
// consumer retries those (and alerts through its logs) rather than park every email.
func Refused(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrInvalid) {
		return true
	}
	var se *gomail.SendError
	if !errors.As(err, &se) || se.IsTemp() || se.ErrorCode() < 500 {
		return false
	}
	switch se.Reason {
	case gomail.ErrSMTPRcptTo, gomail.ErrSMTPData, gomail.ErrSMTPDataClose, gomail.ErrWriteContent:
		return true
	}
	return false
}

// Permanent reports whether err says that sending the same message again cannot succeed:
// an invalid message, or an SMTP 5xx reply (unknown recipient, refused sender, failed
// authentication). Network failures, timeouts and 4xx replies are temporary. An outbox
// consumer retries temporary errors and parks permanent ones.
func Permanent(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrInvalid) {
		return true
	}
	var se *gomail.SendError
	if errors.As(err, &se) {
		return !se.IsTemp() && se.ErrorCode() >= 500
	}
	var te *textproto.Error
	if errors.As(err, &te) {
		return te.Code >= 500 && te.Code < 600
	}
	return false
}
