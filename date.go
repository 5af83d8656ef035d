package bookstore

import (
	"fmt"
	"io"
	"strconv"
	"time"
)

// Date is a calendar date without time zone (a book's publication date). It implements
// gqlgen's Marshaler and Unmarshaler interfaces by method set alone, so this package
// does not import gqlgen.
type Date struct{ time.Time }

const dateLayout = "2006-01-02"

// NewDate returns the date of t in UTC.
func NewDate(y int, m time.Month, d int) Date {
	return Date{time.Date(y, m, d, 0, 0, 0, 0, time.UTC)}
}

// ParseDate parses YYYY-MM-DD.
func ParseDate(s string) (Date, error) {
	t, err := time.Parse(dateLayout, s)
	if err != nil {
		return Date{}, fmt.Errorf("date %q is not YYYY-MM-DD", s)
	}
	return Date{t}, nil
}

func (d Date) String() string { return d.Format(dateLayout) }

// MarshalGQL writes the date as a GraphQL string.
func (d Date) MarshalGQL(w io.Writer) { io.WriteString(w, strconv.Quote(d.String())) }

// UnmarshalGQL reads a YYYY-MM-DD string.
func (d *Date) UnmarshalGQL(v any) error {
	s, ok := v.(string)
	if !ok {
		return fmt.Errorf("Date must be a string, got %T", v)
	}
	p, err := ParseDate(s)
	if err != nil {
		return err
	}
	*d = p
	return nil
}
