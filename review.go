package bookstore

import (
	"errors"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Limits of a review's text, in characters after trimming.
const (
	MaxReviewTitle = 120
	MaxReviewBody  = 5000
)

// ReviewerStatuses are the order statuses that make a customer a buyer who may review the
// books of the order: the parcel reached them (DELIVERED), or reached them and went back
// (RETURNED: they had the book in hand, and why they returned it is worth reading). A
// paid order on its way does not count: nobody reviews a book they have not seen.
var ReviewerStatuses = []OrderStatus{OrderDelivered, OrderReturned}

// DefaultReviewerName is shown for a reviewer whose account has no usable name.
const DefaultReviewerName = "Verified buyer"

// Errors of a review that cannot be created; Field is the argument they are about.
var (
	ErrNotPurchased = &Error{Code: CodeNotPurchased, Field: "bookId",
		Message: "only a customer who received this book can review it"}
	ErrAlreadyReviewed = &Error{Code: CodeAlreadyReviewed, Field: "bookId",
		Message: "you have already reviewed this book"}
	ErrReviewBookNotFound = &Error{Code: CodeNotFound, Field: "bookId", Message: "no book with this id"}
)

// NewReview is a review a customer writes.
type NewReview struct {
	BookID     uuid.UUID
	CustomerID uuid.UUID
	Rating     int
	Title      string
	Body       string
	// ReviewerName is what the review shows of its author (see ReviewerName).
	ReviewerName string
}

// Validate checks and normalises the text fields of r: rating 1 to 5, title at most
// MaxReviewTitle and body at most MaxReviewBody characters once trimmed, both valid UTF-8
// without control characters (the body may have line breaks: CRLF and CR become LF).
// Empty title and body are allowed: a rating alone is a review. Every invalid field is
// reported (errors.Join of BAD_USER_INPUT errors), so a form can mark them all.
func (r *NewReview) Validate() error {
	var errs []error
	if r.Rating < 1 || r.Rating > 5 {
		errs = append(errs, InvalidField("rating", "must be an integer from 1 to 5"))
	}
	var err error
	if r.Title, err = reviewText("title", r.Title, MaxReviewTitle, false); err != nil {
		errs = append(errs, err)
	}
	if r.Body, err = reviewText("body", r.Body, MaxReviewBody, true); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func reviewText(field, s string, max int, multiline bool) (string, error) {
	if len(s) > 4*max+1024 { // more bytes than max characters and trimmable space take
		return "", InvalidField(field, "must be at most %d characters", max)
	}
	if !utf8.ValidString(s) {
		return "", InvalidField(field, "must be valid UTF-8 text")
	}
	if multiline {
		s = strings.ReplaceAll(s, "\r\n", "\n")
		s = strings.ReplaceAll(s, "\r", "\n")
	}
	s = strings.TrimSpace(s)
	for _, c := range s {
		if unicode.IsControl(c) && !(multiline && c == '\n') {
			return "", InvalidField(field, "must not contain control characters")
		}
		// Format characters (Cf) are invisible: bidirectional overrides and isolates
		// reorder the text around them (a public review must read as it is stored), and
		// zero-width spaces make empty-looking text. The zero-width joiner and non-joiner
		// stay: emoji sequences and Persian or Indic words need them.
		if unicode.Is(unicode.Cf, c) && c != '\u200c' && c != '\u200d' {
			return "", InvalidField(field, "must not contain invisible formatting characters (U+%04X)", c)
		}
	}
	if s != "" && strings.TrimFunc(s, func(c rune) bool { return unicode.IsSpace(c) || c == '\u200c' || c == '\u200d' }) == "" {
		return "", InvalidField(field, "must contain visible text or be empty")
	}
	if utf8.RuneCountInString(s) > max {
		return "", InvalidField(field, "must be at most %d characters", max)
	}
	return s, nil
}

// ReviewerName is what a review shows of its author, whose full name is fullName: the
// first word only (a review is public and permanent; a first name is enough to read as
// a person, and not enough to find them), or DefaultReviewerName when there is none or
// it looks like an email address or a handle (an @ or a digit).
func ReviewerName(fullName string) string {
	f := strings.Fields(fullName)
	if len(f) == 0 {
		return DefaultReviewerName
	}
	name := f[0]
	// An email address or a handle typed as a name would be published for good: a
	// first name has neither @ nor digits.
	if strings.ContainsFunc(name, func(c rune) bool { return c == '@' || unicode.IsDigit(c) }) {
		return DefaultReviewerName
	}
	if utf8.RuneCountInString(name) > 40 {
		name = string([]rune(name)[:40])
	}
	return name
}
