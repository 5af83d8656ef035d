package store

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore"
)

// A cursor is a position in one sort order: the sort key and id of the last row a client
// saw. Pages resume with a keyset comparison, (key, id) > (cursor.key, cursor.id), so
// deep pages cost the same as the first and rows added meanwhile are neither skipped nor
// repeated. Cursors are opaque to clients: base64url of a small JSON object.
type cursor struct {
	Sort string          `json:"s"`
	Key  json.RawMessage `json:"k"`
	ID   uuid.UUID       `json:"i"`
}

func encodeCursor(sort string, key any, id uuid.UUID) string {
	k, _ := json.Marshal(key)
	b, _ := json.Marshal(cursor{Sort: sort, Key: k, ID: id})
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor parses s, checks it belongs to sort, and decodes its key into key (a
// pointer of the sort column's Go type).
func decodeCursor(s, sort string, key any) (uuid.UUID, error) {
	bad := bookstore.InvalidField("after", "invalid cursor; pass a cursor from this list's pageInfo or edges")
	raw, err := base64.RawURLEncoding.DecodeString(s)
	// Checked on the raw bytes: json.Unmarshal would replace invalid UTF-8 with U+FFFD
	// and hand the query a key no cursor of ours holds.
	if err != nil || len(raw) > 1024 || !utf8.Valid(raw) {
		return uuid.Nil, bad
	}
	var c cursor
	if err := json.Unmarshal(raw, &c); err != nil || c.Sort != sort || c.ID == uuid.Nil {
		return uuid.Nil, bad
	}
	if err := json.Unmarshal(c.Key, key); err != nil {
		return uuid.Nil, bad
	}
	// A text key goes into a query parameter: a NUL (which PostgreSQL's TEXT refuses with
	// SQLSTATE 22021, an INTERNAL error) or invalid UTF-8 is a forged cursor, not ours.
	if k, ok := key.(*string); ok && (strings.IndexByte(*k, 0) >= 0 || !utf8.ValidString(*k)) {
		return uuid.Nil, bad
	}
	return c.ID, nil
}

// sortSpec says how a BookSort orders rows and where its key lives.
type sortSpec struct {
	col  string // column of books (alias b)
	typ  string // its SQL type, to type the cursor's placeholder
	desc bool
	key  func(*bookstore.Book) any
	// zero returns a pointer to decode this sort's cursor key into, and the value to
	// bind for the comparison.
	zero func() (ptr any, val func() any)
}

var bookSorts = map[bookstore.BookSort]sortSpec{
	bookstore.SortTitle: {col: "title", typ: "TEXT",
		key:  func(b *bookstore.Book) any { return b.Title },
		zero: stringKey},
	bookstore.SortPriceAsc: {col: "price_cents", typ: "INT8",
		key:  func(b *bookstore.Book) any { return b.PriceCents },
		zero: intKey},
	bookstore.SortPriceDesc: {col: "price_cents", typ: "INT8", desc: true,
		key:  func(b *bookstore.Book) any { return b.PriceCents },
		zero: intKey},
	bookstore.SortRating: {col: "rating", typ: "FLOAT8", desc: true,
		key:  func(b *bookstore.Book) any { return b.Rating },
		zero: floatKey},
	bookstore.SortNewest: {col: "release_key", typ: "DATE", desc: true,
		key:  func(b *bookstore.Book) any { return releaseKey(b).Format(time.DateOnly) },
		zero: dateKey},
	bookstore.SortBestselling: {col: "sales_count", typ: "INT8", desc: true,
		key:  func(b *bookstore.Book) any { return b.SalesCount },
		zero: intKey},
}

func stringKey() (any, func() any) { var v string; return &v, func() any { return v } }
func intKey() (any, func() any)    { var v int64; return &v, func() any { return v } }
func floatKey() (any, func() any)  { var v float64; return &v, func() any { return v } }
func dateKey() (any, func() any) {
	var v string
	return &v, func() any {
		t, err := time.Parse(time.DateOnly, v)
		if err != nil {
			return nil
		}
		return t
	}
}

// releaseKey mirrors the release_key column: the publication date, or year 1 if unknown.
func releaseKey(b *bookstore.Book) time.Time {
	if b.PublishedAt != nil {
		return b.PublishedAt.Time
	}
	return time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
}

func specFor(sort bookstore.BookSort) (sortSpec, error) {
	s, ok := bookSorts[sort]
	if !ok {
		return sortSpec{}, bookstore.InvalidField("sort", "unknown sort %q", sort)
	}
	return s, nil
}

// orderBy returns the ORDER BY list for the spec.
func (s sortSpec) orderBy(alias string) string {
	if s.desc {
		return alias + "." + s.col + " DESC, " + alias + ".id DESC"
	}
	return alias + "." + s.col + ", " + alias + ".id"
}

// after returns the keyset condition for resuming after a cursor, with placeholders
// $n and $n+1, and the two values to bind; a bad cursor is a BAD_USER_INPUT error.
func (s sortSpec) after(sort bookstore.BookSort, alias, cur string, n int) (string, []any, error) {
	ptr, val := s.zero()
	id, err := decodeCursor(cur, string(sort), ptr)
	if err != nil {
		return "", nil, err
	}
	v := val()
	if v == nil {
		return "", nil, bookstore.InvalidField("after", "invalid cursor")
	}
	op := ">"
	if s.desc {
		op = "<"
	}
	cond := "(" + alias + "." + s.col + ", " + alias + ".id) " + op + " ($" + itoa(n) + "::" + s.typ + ", $" + itoa(n+1) + "::UUID)"
	return cond, []any{v, id}, nil
}

func (s sortSpec) cursor(sort bookstore.BookSort, b *bookstore.Book) string {
	return encodeCursor(string(sort), s.key(b), b.ID)
}
