// Package mail writes and sends the shop's emails: order confirmation, shipped and
// cancelled, rendered from embedded templates (text and HTML, multipart/alternative) and
// delivered by a Sender, either SMTP (through github.com/wneessen/go-mail) or, in
// development, a directory of .eml files. It takes plain data (Order, Message) and knows no
// store: the outbox consumer loads and decrypts an order just before the send and passes it
// in, so customer PII exists in clear only for the length of a send.
//
// Every message has a key ("order/<id>/confirmation") and a Message-ID derived from it, so
// a message sent twice (an outbox event handled again after a crash) is the same email to
// the recipient's client, and the Dir sender writes it once. Header values that came from
// customers (a name, a book title) are cleaned to one line, and Message.Validate refuses a
// CR or LF in any header, so no input can add a header or a recipient.
//
// Send errors say whether a retry can help: Permanent(err) is true for an invalid message
// and for 5xx SMTP replies (unknown recipient), false for network errors, timeouts and 4xx.
// Refused(err) narrows that to a refusal of the message itself (RCPT TO or DATA 5xx, or an
// invalid message): a 5xx at AUTH or MAIL FROM is about the sender's configuration, and
// the order-mail consumer retries it instead of parking every email.
//
// # Emails (README)
//
// With SMTP_URL set, order emails go out through that SMTP server:
//
//	SMTP_URL=smtps://apikey:SECRET@smtp.example.com        # implicit TLS, port 465
//	SMTP_URL=smtp://user:SECRET@smtp.example.com:587       # STARTTLS, required by default
//	SMTP_URL=smtp://127.0.0.1:1025?starttls=none           # a local catcher (Mailpit), no auth
//
// Options in the query: starttls=required|opportunistic|none (smtp:// only; "required" means
// a server or a man in the middle that does not offer STARTTLS gets no password),
// timeout=30s (the whole session, 1s to 5m),
// auth=plain|login|cram-md5|scram-sha-1|scram-sha-256 (plain by default when the URL
// has a user), helo=name.
// Percent-encode special characters in the user and password (@ is %40). Certificates are
// always verified. The password is never logged: logs and errors show the URL with
// "xxxxx" in its place. A URL that does not parse stops the start-up.
//
// Without SMTP_URL (`bookstore dev`, `make run`), emails are written as .eml files to
// <data dir>/mail/, one file per email, named <UTC time>-<key>-<hash>.eml, e.g.
// 20261202T070338Z-order_3f2a..._confirmation-kq3v7x2mzt4ab.eml; each is logged with its path
// ("mail written"). Open one with any mail client, or read it: it is plain RFC 5322. An
// email handled twice is written once.
package mail
