package mail

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	netmail "net/mail"
	"net/textproto"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	gomail "github.com/wneessen/go-mail"
)

// Sender delivers one message. Implementations are safe for concurrent use. Sending the
// same Message (same Key) twice is allowed: the copies carry the same Message-ID, so mail
// clients show one email, and the Dir sender writes it once.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// Message is one email as plain data: a caller needs no store or template to build one.
type Message struct {
	// Key names what the message is about, e.g. "order/<id>/confirmation". It is required:
	// the Message-ID is derived from it, so a re-sent message is recognisably the same one.
	Key     string
	From    netmail.Address
	To      []netmail.Address
	Subject string
	Text    string // plain-text body
	HTML    string // HTML body; with Text, the message is multipart/alternative
	// Date is when the message was written; zero means the time of sending. An outbox
	// consumer can set the event's time, so a re-sent copy is the same email byte for byte
	// (but for the MIME boundary).
	Date time.Time
	// Header holds extra header fields (e.g. "List-Unsubscribe"). The fields the sender
	// writes itself (addresses, Subject, Date, Message-ID, MIME) cannot be set here.
	Header map[string]string
}

// ErrInvalid is wrapped by every error about a Message (or an order email's input) that no
// retry can fix. Permanent reports it as permanent.
var ErrInvalid = errors.New("invalid mail")

// Limits on a Message. SMTP servers refuse far less than this, but a bug that renders a
// runaway body should fail here, loudly, not in a relay's queue.
const (
	maxKey        = 200
	maxRecipients = 50
	maxSubject    = 300 // bytes; RFC 5322 limits a line to 998
	maxName       = 200
	maxBody       = 1 << 20
	maxHeaders    = 20
	maxHeaderVal  = 900
)

// reserved are the header fields the sender writes; Header may not set or repeat them.
var reserved = map[string]bool{
	"From": true, "To": true, "Cc": true, "Bcc": true, "Sender": true, "Reply-To": true,
	"Subject": true, "Date": true, "Message-Id": true, "Mime-Version": true,
	"Content-Type": true, "Content-Transfer-Encoding": true, "Return-Path": true,
	"Auto-Submitted": true,
}

// Validate checks m before anything is sent. A header value with CR, LF or another control
// character is refused rather than cleaned: it can only come from a bug or an injection
// attempt, and a sender that "fixes" it would hide both.
func (m Message) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
	}
	if m.Key == "" || len(m.Key) > maxKey || !printable(m.Key) {
		return bad("key must be 1 to %d printable characters", maxKey)
	}
	if err := checkAddress(m.From); err != nil {
		return bad("from: %v", err)
	}
	if len(m.To) == 0 || len(m.To) > maxRecipients {
		return bad("need 1 to %d recipients, have %d", maxRecipients, len(m.To))
	}
	for i, a := range m.To {
		if err := checkAddress(a); err != nil {
			return bad("to[%d]: %v", i, err)
		}
	}
	if m.Subject == "" || len(m.Subject) > maxSubject || !headerSafe(m.Subject) {
		return bad("subject must be 1 to %d bytes of one line", maxSubject)
	}
	if m.Text == "" && m.HTML == "" {
		return bad("no body")
	}
	if len(m.Text) > maxBody || len(m.HTML) > maxBody {
		return bad("body over %d bytes", maxBody)
	}
	if !utf8.ValidString(m.Text) || !utf8.ValidString(m.HTML) {
		return bad("body is not UTF-8")
	}
	if len(m.Header) > maxHeaders {
		return bad("more than %d extra headers", maxHeaders)
	}
	for k, v := range m.Header {
		if !token(k) || reserved[canonical(k)] {
			return bad("header name %q not allowed", k)
		}
		if len(v) > maxHeaderVal || !headerSafe(v) {
			return bad("header %s: value must be one line of at most %d bytes", k, maxHeaderVal)
		}
	}
	return nil
}

func checkAddress(a netmail.Address) error {
	if len(a.Name) > maxName || !headerSafe(a.Name) {
		return fmt.Errorf("name must be one line of at most %d bytes", maxName)
	}
	p, err := netmail.ParseAddress(a.Address)
	if err != nil || p.Address != a.Address || p.Name != "" {
		return fmt.Errorf("%q is not a bare email address", a.Address)
	}
	return nil
}

// MessageID is the Message-ID of m, with its angle brackets: a hash of the key at the
// sender's domain, so the same key always gives the same id and the key (an order id, say)
// does not show in it.
func (m Message) MessageID() string {
	domain := "localhost"
	if i := strings.LastIndexByte(m.From.Address, '@'); i >= 0 {
		domain = m.From.Address[i+1:]
	}
	return "<" + keyHash(m.Key) + "@" + domain + ">"
}

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// keyHash is 130 bits of SHA-256 of key in lower-case base32: dot-atom safe, file-name
// safe, and collision-free for any number of orders this shop will see.
func keyHash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return strings.ToLower(b32.EncodeToString(sum[:])[:26])
}

// render builds the go-mail message that both senders write, so the SMTP wire format and
// the dev .eml files are the same bytes (but for the MIME boundary).
func (m Message) render(now time.Time) (*gomail.Msg, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	// No default User-Agent: it would tell every recipient our library and its version.
	g := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	from := m.From
	g.FromMailAddress(&from)
	to := make([]*netmail.Address, len(m.To))
	for i := range m.To {
		a := m.To[i]
		to[i] = &a
	}
	g.ToMailAddress(to...)
	g.Subject(m.Subject)
	id := m.MessageID()
	g.SetMessageIDWithValue(id[1 : len(id)-1])
	date := m.Date
	if date.IsZero() {
		date = now
	}
	g.SetDateWithValue(date)
	// RFC 3834: tells vacation responders and ticket systems not to answer.
	g.SetGenHeader("Auto-Submitted", "auto-generated")
	for k, v := range m.Header {
		g.SetGenHeader(gomail.Header(canonical(k)), v)
	}
	switch {
	case m.Text != "" && m.HTML != "":
		g.SetBodyString(gomail.TypeTextPlain, m.Text)
		g.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	case m.Text != "":
		g.SetBodyString(gomail.TypeTextPlain, m.Text)
	default:
		g.SetBodyString(gomail.TypeTextHTML, m.HTML)
	}
	return g, nil
}

// headerSafe: no control characters at all (so no CR or LF), and valid UTF-8. Unicode line
// and paragraph separators count as controls too: some clients break lines on them.
func headerSafe(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return false
		}
	}
	return true
}

func printable(s string) bool {
	for _, r := range s {
		if r < 0x21 || r > 0x7e {
			return false
		}
	}
	return true
}

// token reports whether s is an RFC 5322 field name.
func token(s string) bool {
	if s == "" || len(s) > 76 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == ':' {
			return false
		}
	}
	return true
}

func canonical(k string) string { return textproto.CanonicalMIMEHeaderKey(k) }

// oneLine makes a customer-supplied value fit for a header or a line of text: control
// characters (CR and LF among them) and runs of spaces become one space. Order emails use it
// on names and titles, so an odd name costs nothing but its line breaks; Message.Validate
// still refuses anything that was not cleaned this way.
func oneLine(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	var b strings.Builder
	space := false
	for _, r := range s {
		if unicode.IsControl(r) || unicode.IsSpace(r) || r == '\u2028' || r == '\u2029' {
			space = true
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(r)
	}
	return b.String()
}
