-- +goose Up
-- One row per email the order-mail consumer sent or is sending, keyed by the message's
-- key ("order/<id>/confirmation"), so an outbox event handled again (a batch retried
-- because another email in it failed, a lease that ran out mid-send, a crash before the
-- delivery was recorded) sends no second copy. No address or other PII is kept: the key
-- names the order and the kind of email only.
--
-- A sender claims the key (claim, claimed_at) before it talks to the SMTP server and
-- marks it sent (sent_at) after the server accepted the message; a failed send deletes
-- its claim. A claim older than the consumer's claim TTL (longer than any SMTP session)
-- belonged to a process that died mid-send and may be taken over: the one case where a
-- second copy can go out (with the same Message-ID, so mail clients show one email).
CREATE TABLE sent_mail (
    mail_key   TEXT PRIMARY KEY,
    claim      UUID NOT NULL,
    claimed_at TIMESTAMPTZ NOT NULL,
    sent_at    TIMESTAMPTZ
);

-- +goose Down
DROP TABLE sent_mail;
