package mail_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"testing"

	"github.com/shopfront/bookstore/mail"
)

// BenchmarkOrderConfirmation: templates (text and HTML) and validation of one email.
func BenchmarkOrderConfirmation(b *testing.B) {
	o := sampleOrder()
	for b.Loop() {
		if _, err := mail.OrderConfirmation(o, from); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSMTPSend: one email over a fresh loopback connection with STARTTLS and AUTH
// PLAIN, the cost the outbox consumer pays per email (the server's share included).
func BenchmarkSMTPSend(b *testing.B) {
	ts := startServer(b, serverConfig{startTLS: true, user: "u", pass: "secret"})
	s, err := mail.FromURL(smtpURL("smtp", ts, ""), mail.WithTLSConfig(&tls.Config{RootCAs: ts.ca}))
	if err != nil {
		b.Fatal(err)
	}
	m, err := mail.OrderConfirmation(sampleOrder(), from)
	if err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		i++
		m.Key = fmt.Sprintf("bench/%d", i)
		if err := s.Send(context.Background(), m); err != nil {
			b.Fatal(err)
		}
	}
}
