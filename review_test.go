package bookstore_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/shopfront/bookstore"
)

func TestNewReviewValidate(t *testing.T) {
	for _, c := range []struct {
		name        string
		in          bookstore.NewReview
		title, body string   // after normalisation, when valid
		fields      []string // the invalid fields, in order
	}{
		{name: "rating only", in: bookstore.NewReview{Rating: 1}},
		{name: "trimmed", in: bookstore.NewReview{Rating: 5, Title: " \u00a0Good\t", Body: "\n Fine. \n"}, title: "Good", body: "Fine."},
		{name: "line breaks kept, CRLF and CR become LF", in: bookstore.NewReview{Rating: 3, Body: "a\r\nb\rc\nd"}, body: "a\nb\nc\nd"},
		{name: "limits are characters", in: bookstore.NewReview{Rating: 2, Title: strings.Repeat("語", 120), Body: strings.Repeat("😀", 5000)},
			title: strings.Repeat("語", 120), body: strings.Repeat("😀", 5000)},
		{name: "rating 0", in: bookstore.NewReview{Rating: 0}, fields: []string{"rating"}},
		{name: "rating 6", in: bookstore.NewReview{Rating: 6}, fields: []string{"rating"}},
		{name: "title too long", in: bookstore.NewReview{Rating: 4, Title: strings.Repeat("a", 121)}, fields: []string{"title"}},
		{name: "body too long", in: bookstore.NewReview{Rating: 4, Body: strings.Repeat("a", 5001)}, fields: []string{"body"}},
		{name: "huge body refused before it is scanned", in: bookstore.NewReview{Rating: 4, Body: strings.Repeat(" ", 1<<20)}, fields: []string{"body"}},
		{name: "invalid UTF-8", in: bookstore.NewReview{Rating: 4, Title: "a\xffb"}, fields: []string{"title"}},
		{name: "line break in a title", in: bookstore.NewReview{Rating: 4, Title: "a\r\nb"}, fields: []string{"title"}},
		{name: "tab inside a body", in: bookstore.NewReview{Rating: 4, Body: "a\tb"}, fields: []string{"body"}},
		{name: "emoji with joiners kept", in: bookstore.NewReview{Rating: 5, Title: "\U0001F469\u200d\U0001F4BB great"}, title: "\U0001F469\u200d\U0001F4BB great"},
		{name: "bidi override", in: bookstore.NewReview{Rating: 4, Title: "\u202eevil"}, fields: []string{"title"}},
		{name: "bidi isolate in a body", in: bookstore.NewReview{Rating: 4, Body: "a\u2067b"}, fields: []string{"body"}},
		{name: "only zero-width spaces", in: bookstore.NewReview{Rating: 4, Title: "\u200b\u200b"}, fields: []string{"title"}},
		{name: "only joiners", in: bookstore.NewReview{Rating: 4, Title: "\u200d"}, fields: []string{"title"}},
		{name: "all at once", in: bookstore.NewReview{Rating: 7, Title: "\x00", Body: "\x1b"}, fields: []string{"rating", "title", "body"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := c.in
			err := r.Validate()
			var got []string
			if err != nil {
				errs := []error{err}
				if j, ok := err.(interface{ Unwrap() []error }); ok {
					errs = j.Unwrap()
				}
				for _, e := range errs {
					var be *bookstore.Error
					if !errors.As(e, &be) || be.Code != bookstore.CodeBadUserInput {
						t.Fatalf("error %v is not BAD_USER_INPUT", e)
					}
					got = append(got, be.Field)
				}
			}
			if strings.Join(got, ",") != strings.Join(c.fields, ",") {
				t.Fatalf("invalid fields %v, want %v (%v)", got, c.fields, err)
			}
			if err == nil && (r.Title != c.title || r.Body != c.body) {
				t.Fatalf("normalised to %q / %q, want %q / %q", r.Title, r.Body, c.title, c.body)
			}
		})
	}
}

func TestReviewerName(t *testing.T) {
	for in, want := range map[string]string{
		"Ann Marie Reader":      "Ann",
		"  Zoë  ":               "Zoë",
		"":                      bookstore.DefaultReviewerName,
		" \t ":                  bookstore.DefaultReviewerName,
		strings.Repeat("x", 60): strings.Repeat("x", 40),
		"ann@example.com":       bookstore.DefaultReviewerName, // an email typed as a name is not published
		"reader1987 Smith":      bookstore.DefaultReviewerName, // nor a handle
	} {
		if got := bookstore.ReviewerName(in); got != want {
			t.Errorf("ReviewerName(%q) = %q, want %q", in, got, want)
		}
	}
}
