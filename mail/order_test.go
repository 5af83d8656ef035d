package mail_test

import (
	"errors"
	"math"
	netmail "net/mail"
	"strings"
	"testing"
	"time"

	"github.com/shopfront/bookstore/mail"
)

func sampleOrder() mail.Order {
	return mail.Order{
		ID:       "0b9f0c1e-8d4a-4c55-9a57-3c1d2e4f5a6b",
		Number:   "BK-1042",
		PlacedAt: time.Date(2026, 12, 1, 18, 4, 0, 0, time.UTC),
		Email:    "ann@example.com",
		Name:     "Ann Lee",
		Lines: []mail.Line{
			{Title: "The Left Hand of Darkness", Quantity: 2, UnitPriceCents: 1499, TotalCents: 2998},
			{Title: "Kindred", Quantity: 1, UnitPriceCents: 999, TotalCents: 999},
		},
		Cost: mail.Cost{SubtotalCents: 3997, DiscountCents: 400, ShippingCents: 499, TaxCents: 288, TotalCents: 4384, Currency: "USD"},
		ShippingAddress: mail.Address{Recipient: "Ann Lee", Line1: "1 Main St", Line2: "Apt 2", City: "Springfield",
			Region: "IL", PostalCode: "62701", Country: "US"},
		URL: "https://shop.example/orders/BK-1042",
	}
}

// plainMessage is a minimal valid message for transport tests.
func plainMessage(key string) mail.Message {
	return mail.Message{
		Key:     key,
		From:    netmail.Address{Name: "Bookstore", Address: "orders@shop.example"},
		To:      []netmail.Address{{Name: "Ann", Address: "ann@example.com"}},
		Subject: "Hello " + key,
		Text:    "text body of " + key,
		HTML:    "<p>html body of " + key + "</p>",
	}
}

func TestMoney(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cents int64
		cur   string
		want  string
	}{
		{2998, "USD", "$29.98"},
		{1250, "EUR", "€12.50"},
		{100000, "GBP", "£1,000.00"},
		{123456789, "USD", "$1,234,567.89"},
		{1230, "JPY", "¥1,230"}, // no minor unit: the amount is in yen
		{5, "USD", "$0.05"},
		{0, "EUR", "€0.00"},
		{-500, "USD", "-$5.00"},
		{1250, "CHF", "12.50 CHF"}, // its symbol is its code
		{1250, "XYZ", "12.50 XYZ"}, // unknown to CLDR
		{1050, "CAD", "CA$10.50"},  // not mistaken for US dollars
		{math.MinInt64, "USD", "-$92,233,720,368,547,758.08"},
	} {
		if got := mail.Money(tc.cents, tc.cur); got != tc.want {
			t.Errorf("Money(%d, %s) = %q, want %q", tc.cents, tc.cur, got, tc.want)
		}
	}
}

func TestOrderConfirmation(t *testing.T) {
	t.Parallel()
	m, err := mail.OrderConfirmation(sampleOrder(), from)
	if err != nil {
		t.Fatal(err)
	}
	if m.Key != "order/0b9f0c1e-8d4a-4c55-9a57-3c1d2e4f5a6b/confirmation" || m.Subject != "Your order BK-1042 is confirmed" {
		t.Errorf("key %q, subject %q", m.Key, m.Subject)
	}
	if m.From.Address != "orders@shop.example" || len(m.To) != 1 || m.To[0] != (netmail.Address{Name: "Ann Lee", Address: "ann@example.com"}) {
		t.Errorf("from %v to %v", m.From, m.To)
	}
	for _, want := range []string{
		"Hello Ann Lee,", "order BK-1042 of 1 December 2026",
		"2 x The Left Hand of Darkness @ $14.99 = $29.98", "1 x Kindred @ $9.99 = $9.99",
		"Subtotal: $39.97", "Discount: -$4.00", "Shipping: $4.99", "Tax:      $2.88", "Total:    $43.84",
		"  Ann Lee\n  1 Main St\n  Apt 2\n  Springfield, IL 62701\n  US\n",
		"https://shop.example/orders/BK-1042",
	} {
		if !strings.Contains(m.Text, want) {
			t.Errorf("text lacks %q:\n%s", want, m.Text)
		}
	}
	for _, want := range []string{"<td>Kindred</td>", "<td align=\"right\">-$4.00</td>", "Ann Lee<br>1 Main St<br>Apt 2<br>Springfield, IL 62701<br>US"} {
		if !strings.Contains(m.HTML, want) {
			t.Errorf("html lacks %q:\n%s", want, m.HTML)
		}
	}

	// No discount, no URL, no second address line: their lines disappear, nothing empty shows.
	o := sampleOrder()
	o.Cost.DiscountCents, o.URL, o.ShippingAddress.Line2, o.Name = 0, "", "", ""
	m, err = mail.OrderConfirmation(o, from)
	if err != nil {
		t.Fatal(err)
	}
	if m.To[0].Name != "" || !strings.HasPrefix(m.Text, "Hello,\n") || !strings.Contains(m.HTML, "<p>Hello,</p>") {
		t.Errorf("greeting without a name: to %q\n%s", m.To[0].Name, m.Text)
	}
	for _, unwanted := range []string{"Discount", "See your order", "\n  \n"} {
		if strings.Contains(m.Text, unwanted) || strings.Contains(m.HTML, unwanted) {
			t.Errorf("email shows %q:\n%s\n%s", unwanted, m.Text, m.HTML)
		}
	}
}

// TestOrderEmailsEscapeHTML: a book title or name with markup is text in the HTML part
// (escaped), and stays as written in the plain-text part.
func TestOrderEmailsEscapeHTML(t *testing.T) {
	t.Parallel()
	o := sampleOrder()
	o.Lines[0].Title = `<script>alert("x")</script> & "Friends"`
	o.Name = `<img src=x onerror=alert(1)>`
	o.ShippingAddress.Line1 = `<a href="javascript:alert(1)">home</a>`
	s := mail.Shipment{Carrier: "<b>UPS</b>", TrackingNumber: "1Z<i>", TrackingURL: "https://track.example/?n=1Z&x=\"><script>"}
	msgs := map[string]func() (mail.Message, error){
		"confirmation": func() (mail.Message, error) { return mail.OrderConfirmation(o, from) },
		"shipped":      func() (mail.Message, error) { return mail.OrderShipped(o, s, from) },
		"cancelled": func() (mail.Message, error) {
			return mail.OrderCancelled(o, mail.Cancellation{RefundCents: 100, Reason: "<u>out of stock</u>"}, from)
		},
	}
	for name, f := range msgs {
		m, err := f()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, raw := range []string{"<script>", "<img", "<a href=\"javascript", "<b>UPS", "<i>", "<u>"} {
			if strings.Contains(m.HTML, raw) {
				t.Errorf("%s: HTML contains %q unescaped:\n%s", name, raw, m.HTML)
			}
		}
		if !strings.Contains(m.HTML, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &#34;Friends&#34;") {
			t.Errorf("%s: title not escaped as text:\n%s", name, m.HTML)
		}
		if !strings.Contains(m.Text, `<script>alert("x")</script> & "Friends"`) {
			t.Errorf("%s: text part altered the title:\n%s", name, m.Text)
		}
		if m.To[0].Name != o.Name {
			t.Errorf("%s: to name %q", name, m.To[0].Name)
		}
	}
}

func TestOrderShipped(t *testing.T) {
	t.Parallel()
	o := sampleOrder()
	s := mail.Shipment{Carrier: "UPS", TrackingNumber: "1Z999AA10123456784", TrackingURL: "https://www.ups.com/track?tracknum=1Z999AA10123456784"}
	m, err := mail.OrderShipped(o, s, from)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "Your order BK-1042 has shipped" || !strings.HasPrefix(m.Key, "order/"+o.ID+"/shipped/") {
		t.Errorf("subject %q key %q", m.Subject, m.Key)
	}
	for _, want := range []string{"Carrier:         UPS", "Tracking number: 1Z999AA10123456784", "Track it:        https://www.ups.com/track?tracknum=1Z999AA10123456784"} {
		if !strings.Contains(m.Text, want) {
			t.Errorf("text lacks %q:\n%s", want, m.Text)
		}
	}
	if !strings.Contains(m.HTML, `<a href="https://www.ups.com/track?tracknum=1Z999AA10123456784">1Z999AA10123456784</a>`) {
		t.Errorf("html lacks the tracking link:\n%s", m.HTML)
	}

	// A second parcel is a second email; the same parcel again is the same email.
	again, _ := mail.OrderShipped(o, s, from)
	s2 := s
	s2.TrackingNumber, s2.TrackingURL = "1Z999AA10123456785", ""
	other, err := mail.OrderShipped(o, s2, from)
	if err != nil {
		t.Fatal(err)
	}
	if again.MessageID() != m.MessageID() || other.MessageID() == m.MessageID() {
		t.Errorf("ids: %s, again %s, other parcel %s", m.MessageID(), again.MessageID(), other.MessageID())
	}
	if strings.Contains(other.Text, "Track it") || strings.Contains(other.HTML, "<a href=\"https://www.ups") {
		t.Errorf("a link without a tracking URL:\n%s\n%s", other.Text, other.HTML)
	}

	for name, bad := range map[string]mail.Shipment{
		"no carrier":      {TrackingNumber: "1"},
		"no number":       {Carrier: "UPS"},
		"javascript link": {Carrier: "UPS", TrackingNumber: "1", TrackingURL: "javascript:alert(1)"},
		"relative link":   {Carrier: "UPS", TrackingNumber: "1", TrackingURL: "/track/1"},
		"credentials":     {Carrier: "UPS", TrackingNumber: "1", TrackingURL: "https://u:p@track.example/1"},
	} {
		if _, err := mail.OrderShipped(o, bad, from); !errors.Is(err, mail.ErrInvalid) {
			t.Errorf("%s: err %v, want ErrInvalid", name, err)
		}
	}
}

func TestOrderCancelled(t *testing.T) {
	t.Parallel()
	o := sampleOrder()
	o.Cost.Currency = "EUR"
	m, err := mail.OrderCancelled(o, mail.Cancellation{RefundCents: 1250, Reason: "at your request"}, from)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "Your order BK-1042 is cancelled" || m.Key != "order/"+o.ID+"/cancelled" {
		t.Errorf("subject %q key %q", m.Subject, m.Key)
	}
	for _, want := range []string{"is cancelled: at your request.", "Refund: €12.50.", "2 x The Left Hand of Darkness @ €14.99 = €29.98"} {
		if !strings.Contains(m.Text, want) {
			t.Errorf("text lacks %q:\n%s", want, m.Text)
		}
	}
	if !strings.Contains(m.HTML, "Refund: <strong>€12.50</strong>") {
		t.Errorf("html lacks the refund:\n%s", m.HTML)
	}

	// Nothing was charged (cancelled before payment): no refund line.
	m, err = mail.OrderCancelled(o, mail.Cancellation{}, from)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(m.Text, "Refund") || strings.Contains(m.HTML, "Refund") {
		t.Errorf("a refund of nothing:\n%s", m.Text)
	}
	for _, c := range []mail.Cancellation{{RefundCents: -1}, {RefundCents: o.Cost.TotalCents + 1}} {
		if _, err := mail.OrderCancelled(o, c, from); !errors.Is(err, mail.ErrInvalid) {
			t.Errorf("refund %d: err %v", c.RefundCents, err)
		}
	}
}

func TestOrderValidate(t *testing.T) {
	t.Parallel()
	for name, mut := range map[string]func(*mail.Order){
		"no id":          func(o *mail.Order) { o.ID = "" },
		"no number":      func(o *mail.Order) { o.Number = "" },
		"bad email":      func(o *mail.Order) { o.Email = "ann" },
		"named email":    func(o *mail.Order) { o.Email = "Ann <ann@example.com>" },
		"email with CR":  func(o *mail.Order) { o.Email = "ann@example.com\r\nBcc: x@evil.example" },
		"no lines":       func(o *mail.Order) { o.Lines = nil },
		"zero quantity":  func(o *mail.Order) { o.Lines[0].Quantity = 0 },
		"no title":       func(o *mail.Order) { o.Lines[1].Title = "" },
		"negative price": func(o *mail.Order) { o.Lines[0].UnitPriceCents = -1 },
		"negative total": func(o *mail.Order) { o.Cost.TotalCents = -1 },
		"lower currency": func(o *mail.Order) { o.Cost.Currency = "usd" },
		"no currency":    func(o *mail.Order) { o.Cost.Currency = "" },
		"long name":      func(o *mail.Order) { o.Name = strings.Repeat("é", 501) },
		"bad utf8":       func(o *mail.Order) { o.Lines[0].Title = "\xff" },
		"bad url":        func(o *mail.Order) { o.URL = "javascript:alert(1)" },
	} {
		o := sampleOrder()
		mut(&o)
		if _, err := mail.OrderConfirmation(o, from); !errors.Is(err, mail.ErrInvalid) || !mail.Permanent(err) {
			t.Errorf("%s: err %v, want ErrInvalid", name, err)
		}
	}
	if _, err := mail.OrderConfirmation(sampleOrder(), "not an address"); !errors.Is(err, mail.ErrInvalid) {
		t.Errorf("bad from: %v", err)
	}
}

func TestMessageID(t *testing.T) {
	t.Parallel()
	a, b := plainMessage("order/1/confirmation"), plainMessage("order/1/confirmation")
	b.Subject, b.Date = "other", time.Now()
	c := plainMessage("order/2/confirmation")
	if a.MessageID() != b.MessageID() || a.MessageID() == c.MessageID() {
		t.Fatalf("ids %s %s %s", a.MessageID(), b.MessageID(), c.MessageID())
	}
	if id, err := (&netmail.Header{"Message-Id": {a.MessageID()}}).AddressList("Message-Id"); err != nil || len(id) != 1 || !strings.HasSuffix(id[0].Address, "@shop.example") || strings.Contains(id[0].Address, "order") {
		t.Fatalf("id %s is not a msg-id at the sender's domain hiding the key (%v)", a.MessageID(), err)
	}
}

func TestMessageValidate(t *testing.T) {
	t.Parallel()
	if err := plainMessage("k").Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*mail.Message){
		"no key":            func(m *mail.Message) { m.Key = "" },
		"key with space":    func(m *mail.Message) { m.Key = "order 1" },
		"no recipient":      func(m *mail.Message) { m.To = nil },
		"bad from":          func(m *mail.Message) { m.From.Address = "shop" },
		"no subject":        func(m *mail.Message) { m.Subject = "" },
		"subject LF":        func(m *mail.Message) { m.Subject = "a\nb" },
		"subject U+2028":    func(m *mail.Message) { m.Subject = "a\u2028b" },
		"long subject":      func(m *mail.Message) { m.Subject = strings.Repeat("a", 301) },
		"no body":           func(m *mail.Message) { m.Text, m.HTML = "", "" },
		"huge body":         func(m *mail.Message) { m.Text = strings.Repeat("a", 1<<20+1) },
		"header name colon": func(m *mail.Message) { m.Header = map[string]string{"X-A:": "1"} },
		"reserved header":   func(m *mail.Message) { m.Header = map[string]string{"message-id": "<x@y>"} },
		"too many rcpts": func(m *mail.Message) {
			for range 50 {
				m.To = append(m.To, m.To[0])
			}
		},
	} {
		m := plainMessage("k")
		mut(&m)
		if err := m.Validate(); !errors.Is(err, mail.ErrInvalid) {
			t.Errorf("%s: err %v, want ErrInvalid", name, err)
		}
	}
}
