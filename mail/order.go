package mail

import (
	"bytes"
	"embed"
	"fmt"
	htmltemplate "html/template"
	netmail "net/mail"
	"net/url"
	"strings"
	texttemplate "text/template"
	"time"
	"unicode/utf8"
)

// Order is what an order email shows, as plain data: the outbox consumer fills it from the
// order (decrypting the customer's PII just before the send) and this package needs no
// store. Amounts are in the minor units of Cost.Currency.
type Order struct {
	ID              string // stable id: it makes the idempotency keys
	Number          string // what the customer sees and quotes to support
	PlacedAt        time.Time
	Email           string
	Name            string
	Lines           []Line
	Cost            Cost
	ShippingAddress Address
	URL             string // optional link to the order's page
}

// Line is one book of the order, with the prices charged.
type Line struct {
	Title          string
	Quantity       int
	UnitPriceCents int64
	TotalCents     int64
}

// Cost is the order's total as charged.
type Cost struct {
	SubtotalCents int64
	DiscountCents int64 // a positive amount taken off
	ShippingCents int64
	TaxCents      int64
	TotalCents    int64
	Currency      string // ISO 4217
}

// Address is the shipping address, as the customer entered it.
type Address struct {
	Recipient  string
	Line1      string
	Line2      string
	City       string
	Region     string
	PostalCode string
	Country    string // ISO 3166-1 alpha-2
}

// Shipment is the parcel an "order shipped" email announces.
type Shipment struct {
	Carrier        string
	TrackingNumber string
	TrackingURL    string // optional; http or https only
}

// Cancellation is what an "order cancelled" email reports.
type Cancellation struct {
	RefundCents int64  // in the order's currency; 0 when nothing was charged
	Reason      string // optional, shown as is
}

// Input limits, as generous as the API's own (a name 100, an address line 200 characters),
// so any order the API accepted renders; beyond them the data is corrupt or hostile.
const (
	maxLines    = 500
	maxText     = 500
	maxURL      = 2048
	maxQuantity = 1_000_000
)

// Validate checks what an order email needs; its errors wrap ErrInvalid.
func (o Order) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: order %s: %s", ErrInvalid, o.ID, fmt.Sprintf(format, args...))
	}
	if o.ID == "" || len(o.ID) > 100 || !printable(o.ID) {
		return bad("id must be 1 to 100 printable characters")
	}
	if o.Number == "" || len(o.Number) > 100 {
		return bad("number must be 1 to 100 bytes")
	}
	if a, err := netmail.ParseAddress(o.Email); err != nil || a.Address != o.Email {
		return bad("email is not a bare address")
	}
	if len(o.Lines) == 0 || len(o.Lines) > maxLines {
		return bad("need 1 to %d lines", maxLines)
	}
	for i, l := range o.Lines {
		if l.Title == "" || l.Quantity < 1 || l.Quantity > maxQuantity || l.UnitPriceCents < 0 || l.TotalCents < 0 {
			return bad("line %d: needs a title, a quantity from 1 to %d and amounts of 0 or more", i, maxQuantity)
		}
	}
	c := o.Cost
	if len(c.Currency) != 3 || strings.ToUpper(c.Currency) != c.Currency || !printable(c.Currency) {
		return bad("currency must be an ISO 4217 code")
	}
	if c.SubtotalCents < 0 || c.DiscountCents < 0 || c.ShippingCents < 0 || c.TaxCents < 0 || c.TotalCents < 0 {
		return bad("amounts must be 0 or more")
	}
	a := o.ShippingAddress
	for _, s := range []string{o.Number, o.Name, a.Recipient, a.Line1, a.Line2, a.City, a.Region, a.PostalCode, a.Country} {
		if utf8.RuneCountInString(s) > maxText || !utf8.ValidString(s) {
			return bad("a text field is over %d characters or not UTF-8", maxText)
		}
	}
	for _, l := range o.Lines {
		if utf8.RuneCountInString(l.Title) > maxText || !utf8.ValidString(l.Title) {
			return bad("a title is over %d characters or not UTF-8", maxText)
		}
	}
	if o.URL != "" && !webURL(o.URL) {
		return bad("url must be an absolute http(s) URL")
	}
	return nil
}

func webURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && len(s) <= maxURL && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" && u.User == nil
}

// Keys of the order emails: one confirmation and one cancellation per order, one shipped
// email per tracking number (an order may ship in parcels).
func confirmationKey(o Order) string { return "order/" + o.ID + "/confirmation" }
func cancelledKey(o Order) string    { return "order/" + o.ID + "/cancelled" }
func shippedKey(o Order, s Shipment) string {
	return "order/" + o.ID + "/shipped/" + keyHash(s.Carrier + "\x00" + s.TrackingNumber)[:16]
}

// OrderConfirmation is the email sent once an order is paid.
func OrderConfirmation(o Order, from string) (Message, error) {
	return render("confirmation", confirmationKey(o), o, from, view{})
}

// OrderShipped announces a shipment with its tracking number (and link, when the carrier
// has one).
func OrderShipped(o Order, s Shipment, from string) (Message, error) {
	if s.Carrier == "" || s.TrackingNumber == "" || len(s.Carrier) > 100 || len(s.TrackingNumber) > 100 {
		return Message{}, fmt.Errorf("%w: order %s: shipment needs a carrier and a tracking number (at most 100 bytes each)", ErrInvalid, o.ID)
	}
	if s.TrackingURL != "" && !webURL(s.TrackingURL) {
		return Message{}, fmt.Errorf("%w: order %s: tracking url must be an absolute http(s) URL", ErrInvalid, o.ID)
	}
	s.Carrier, s.TrackingNumber = oneLine(s.Carrier), oneLine(s.TrackingNumber)
	return render("shipped", shippedKey(o, s), o, from, view{Shipment: s})
}

// OrderCancelled tells the customer the order is cancelled and what is refunded.
func OrderCancelled(o Order, c Cancellation, from string) (Message, error) {
	if c.RefundCents < 0 || c.RefundCents > o.Cost.TotalCents {
		return Message{}, fmt.Errorf("%w: order %s: refund must be from 0 to the order total", ErrInvalid, o.ID)
	}
	if utf8.RuneCountInString(c.Reason) > maxText {
		return Message{}, fmt.Errorf("%w: order %s: reason over %d characters", ErrInvalid, o.ID, maxText)
	}
	v := view{Reason: oneLine(c.Reason)}
	if c.RefundCents > 0 {
		v.Refund = Money(c.RefundCents, o.Cost.Currency)
	}
	return render("cancelled", cancelledKey(o), o, from, v)
}

//go:embed templates
var templateFS embed.FS

// The templates of one email: "<name>.txt" defines "subject" and "text", "<name>.html"
// defines "content" inside the shared layout. Parsed once; a broken template fails every
// test of this package.
type set struct {
	text *texttemplate.Template
	html *htmltemplate.Template
}

var sets = func() map[string]set {
	m := map[string]set{}
	for _, name := range []string{"confirmation", "shipped", "cancelled"} {
		m[name] = set{
			text: texttemplate.Must(texttemplate.New(name).Option("missingkey=error").
				ParseFS(templateFS, "templates/common.txt", "templates/"+name+".txt")),
			html: htmltemplate.Must(htmltemplate.New(name).Option("missingkey=error").
				ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")),
		}
	}
	return m
}()

// view is what the templates see: every value already formatted and on one line, so the
// templates hold no logic beyond layout.
type view struct {
	Number   string
	Name     string
	PlacedAt string
	URL      string
	Lines    []viewLine
	Subtotal string
	Discount string // "" when there is none
	Shipping string
	Tax      string
	Total    string
	Address  []string // the shipping address, one line each, empty lines left out

	Shipment Shipment
	Refund   string
	Reason   string
}

type viewLine struct {
	Title     string
	Quantity  int
	UnitPrice string
	Total     string
}

func render(name, key string, o Order, from string, v view) (Message, error) {
	if err := o.Validate(); err != nil {
		return Message{}, err
	}
	f, err := netmail.ParseAddress(from)
	if err != nil {
		return Message{}, fmt.Errorf("%w: from %q: %v", ErrInvalid, from, err)
	}
	cur := o.Cost.Currency
	v.Number, v.Name, v.URL = oneLine(o.Number), oneLine(o.Name), o.URL
	if !o.PlacedAt.IsZero() {
		v.PlacedAt = o.PlacedAt.UTC().Format("2 January 2006")
	}
	for _, l := range o.Lines {
		v.Lines = append(v.Lines, viewLine{Title: oneLine(l.Title), Quantity: l.Quantity,
			UnitPrice: Money(l.UnitPriceCents, cur), Total: Money(l.TotalCents, cur)})
	}
	c := o.Cost
	v.Subtotal, v.Shipping, v.Tax, v.Total = Money(c.SubtotalCents, cur), Money(c.ShippingCents, cur), Money(c.TaxCents, cur), Money(c.TotalCents, cur)
	if c.DiscountCents > 0 {
		v.Discount = Money(-c.DiscountCents, cur)
	}
	a := o.ShippingAddress
	// "Springfield, IL 62701" / "London SW1A 1AA": one form most carriers and readers accept.
	city := strings.Join(nonEmpty(oneLine(a.City), oneLine(a.Region)), ", ")
	city = strings.Join(nonEmpty(city, oneLine(a.PostalCode)), " ")
	v.Address = nonEmpty(oneLine(a.Recipient), oneLine(a.Line1), oneLine(a.Line2), city, oneLine(a.Country))

	s := sets[name]
	var subj, text, html bytes.Buffer
	if err := s.text.ExecuteTemplate(&subj, "subject", v); err != nil {
		return Message{}, fmt.Errorf("mail %s: subject: %w", name, err)
	}
	if err := s.text.ExecuteTemplate(&text, "text", v); err != nil {
		return Message{}, fmt.Errorf("mail %s: text: %w", name, err)
	}
	if err := s.html.ExecuteTemplate(&html, "layout", v); err != nil {
		return Message{}, fmt.Errorf("mail %s: html: %w", name, err)
	}
	m := Message{
		Key:     key,
		From:    *f,
		To:      []netmail.Address{{Name: truncate(v.Name, maxName), Address: o.Email}},
		Subject: truncate(oneLine(subj.String()), maxSubject),
		Text:    text.String(),
		HTML:    html.String(),
	}
	return m, m.Validate()
}

func nonEmpty(ss ...string) []string {
	out := ss[:0:0]
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// truncate cuts s to at most n bytes on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
