package catalog

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/uuid"
)

const fullHeader = "book_id,title,authors,price_cents,categories,description,isbn,rating,stock"

// validRow is a good row in fullHeader's column order, and wantValid the Record it gives.
var validRow = map[string]string{
	"book_id":     "6ba7b810-9dad-11d1-80b4-00c04fd430c8",
	"title":       "  The Left Hand of Winter ",
	"authors":     "Ann Author | Bob  Writer",
	"price_cents": "1299",
	"categories":  "Fiction > Science Fiction|History",
	"description": "A book.\nTwo lines.",
	"isbn":        "978-0-306-40615-7",
	"rating":      "4.5",
	"stock":       "12",
}

func wantValid(line int) Record {
	id := uuid.MustParse("6ba7b810-9dad-11d1-80b4-00c04fd430c8")
	return Record{
		Line:        line,
		ID:          &id,
		ISBN:        "9780306406157",
		Title:       "The Left Hand of Winter",
		Authors:     []string{"Ann Author", "Bob Writer"},
		Categories:  [][]string{{"Fiction", "Science Fiction"}, {"History"}},
		Description: "A book.\nTwo lines.",
		PriceCents:  1299,
		Rating:      4.5,
		Stock:       12,
	}
}

// csvFile writes a header and rows with encoding/csv (so quoting is right); each row is
// validRow with the given fields replaced.
func csvFile(t testing.TB, header []string, rows ...map[string]string) string {
	t.Helper()
	var b strings.Builder
	w := csv.NewWriter(&b)
	if err := w.Write(header); err != nil {
		t.Fatal(err)
	}
	for _, over := range rows {
		rec := make([]string, len(header))
		for i, h := range header {
			v, ok := over[strings.ToLower(strings.TrimSpace(h))]
			if !ok {
				v = validRow[strings.ToLower(strings.TrimSpace(h))]
			}
			rec[i] = v
		}
		if err := w.Write(rec); err != nil {
			t.Fatal(err)
		}
	}
	w.Flush()
	return b.String()
}

// readAll drains a Reader: good records, row errors, and the error that ended it (nil at
// io.EOF).
func readAll(t testing.TB, input string) ([]Record, []*RowError, error) {
	t.Helper()
	rd, err := NewReader(strings.NewReader(input))
	if err != nil {
		return nil, nil, err
	}
	var recs []Record
	var bad []*RowError
	for {
		rec, err := rd.Next()
		var re *RowError
		switch {
		case err == io.EOF:
			return recs, bad, nil
		case errors.As(err, &re):
			bad = append(bad, re)
		case err != nil:
			return recs, bad, err
		default:
			recs = append(recs, rec)
		}
	}
}

func TestReaderValidRow(t *testing.T) {
	recs, bad, err := readAll(t, csvFile(t, strings.Split(fullHeader, ","), nil))
	if err != nil || len(bad) > 0 {
		t.Fatalf("err = %v, bad rows %v", err, bad)
	}
	if len(recs) != 1 || !reflect.DeepEqual(recs[0], wantValid(2)) {
		t.Fatalf("got %+v\nwant %+v", recs, wantValid(2))
	}
}

func TestReaderRules(t *testing.T) {
	long := func(s string, n int) string { return strings.Repeat(s, n) }
	cases := []struct {
		name  string
		row   map[string]string
		field string // "" with msg "" means the row is valid
		msg   string // a substring of RowError.Msg
		check func(Record) bool
	}{
		{name: "title required", row: map[string]string{"title": ""}, field: "title", msg: "required"},
		{name: "title only spaces", row: map[string]string{"title": "   "}, field: "title", msg: "required"},
		{name: "title 500 characters", row: map[string]string{"title": long("é", 500)}, check: func(r Record) bool { return utf8.RuneCountInString(r.Title) == 500 }},
		{name: "title 501 characters", row: map[string]string{"title": long("a", 501)}, field: "title", msg: "501 characters, at most 500"},
		{name: "title with a line break", row: map[string]string{"title": "Two\nLines"}, field: "title", msg: "control character (U+000A)"},
		{name: "title with a tab", row: map[string]string{"title": "A\tB"}, field: "title", msg: "control character (U+0009)"},
		{name: "title with NUL", row: map[string]string{"title": "A\x00B"}, field: "title", msg: "NUL byte"},
		{name: "title not UTF-8", row: map[string]string{"title": "caf\xe9"}, field: "title", msg: "not valid UTF-8"},

		{name: "authors required", row: map[string]string{"authors": ""}, field: "authors", msg: "at least one author"},
		{name: "authors only separators", row: map[string]string{"authors": " | |"}, field: "authors", msg: "at least one author"},
		{name: "authors empty items skipped", row: map[string]string{"authors": "A||B|"}, check: func(r Record) bool { return reflect.DeepEqual(r.Authors, []string{"A", "B"}) }},
		{name: "author 200 characters", row: map[string]string{"authors": long("a", 200)}, check: func(r Record) bool { return len(r.Authors[0]) == 200 }},
		{name: "author 201 characters", row: map[string]string{"authors": "Ann|" + long("a", 201)}, field: "authors", msg: "201 characters, at most 200"},
		{name: "author with NUL", row: map[string]string{"authors": "A\x00"}, field: "authors", msg: "NUL byte"},

		{name: "price required", row: map[string]string{"price_cents": ""}, field: "price_cents", msg: "required"},
		{name: "price zero", row: map[string]string{"price_cents": "0"}, check: func(r Record) bool { return r.PriceCents == 0 }},
		{name: "price maximum", row: map[string]string{"price_cents": "10000000"}, check: func(r Record) bool { return r.PriceCents == 10_000_000 }},
		{name: "price above maximum", row: map[string]string{"price_cents": "10000001"}, field: "price_cents", msg: "more than the maximum 10000000"},
		{name: "price negative", row: map[string]string{"price_cents": "-1"}, field: "price_cents", msg: "must not be negative"},
		{name: "price in dollars", row: map[string]string{"price_cents": "12.99"}, field: "price_cents", msg: `want a whole number, got "12.99" (the price is in cents`},
		{name: "price not a number", row: map[string]string{"price_cents": "cheap"}, field: "price_cents", msg: `want a whole number, got "cheap"`},
		{name: "price overflows", row: map[string]string{"price_cents": "99999999999999999999"}, field: "price_cents", msg: "out of range"},

		{name: "categories optional", row: map[string]string{"categories": ""}, check: func(r Record) bool { return r.Categories == nil }},
		{name: "category path trimmed", row: map[string]string{"categories": " Fiction>  Science   Fiction |"}, check: func(r Record) bool {
			return reflect.DeepEqual(r.Categories, [][]string{{"Fiction", "Science Fiction"}})
		}},
		{name: "category path empty name", row: map[string]string{"categories": "Fiction > "}, field: "categories", msg: `empty name in category path "Fiction >"`},
		{name: "category without letters", row: map[string]string{"categories": "Fiction > !!!"}, field: "categories", msg: `category name "!!!" has no letter or digit`},
		{name: "category path too deep", row: map[string]string{"categories": "a>b>c>d>e>f"}, field: "categories", msg: "6 levels, at most 5"},
		{name: "category name too long", row: map[string]string{"categories": long("x", 201)}, field: "categories", msg: "201 characters, at most 200"},

		{name: "description optional", row: map[string]string{"description": ""}, check: func(r Record) bool { return r.Description == "" }},
		{name: "description 20000 characters", row: map[string]string{"description": long("ü", 20_000)}, check: func(r Record) bool { return len(r.Description) == 40_000 }},
		{name: "description 20001 characters", row: map[string]string{"description": long("a", 20_001)}, field: "description", msg: "20001 characters, at most 20000"},
		{name: "description tab and line breaks", row: map[string]string{"description": "a\tb\r\nc"}, check: func(r Record) bool { return r.Description == "a\tb\nc" }},
		{name: "description with NUL", row: map[string]string{"description": "abc\x00"}, field: "description", msg: "NUL byte"},
		{name: "description not UTF-8", row: map[string]string{"description": "\xff\xfe"}, field: "description", msg: "not valid UTF-8"},

		{name: "isbn required", row: map[string]string{"isbn": " "}, field: "isbn", msg: "required"},
		{name: "isbn bad check digit", row: map[string]string{"isbn": "0-306-40615-3"}, field: "isbn", msg: "ISBN 0-306-40615-3: bad check digit, want 2"},
		{name: "isbn wrong length", row: map[string]string{"isbn": "12345"}, field: "isbn", msg: "5 digits, want 10 or 13"},
		{name: "isbn-10 converted", row: map[string]string{"isbn": "0-8044-2957-X"}, check: func(r Record) bool { return r.ISBN == "9780804429573" }},

		{name: "rating empty is 0", row: map[string]string{"rating": ""}, check: func(r Record) bool { return r.Rating == 0 }},
		{name: "rating 5", row: map[string]string{"rating": "5"}, check: func(r Record) bool { return r.Rating == 5 }},
		{name: "rating leading dot", row: map[string]string{"rating": ".5"}, check: func(r Record) bool { return r.Rating == 0.5 }},
		{name: "rating above 5", row: map[string]string{"rating": "5.1"}, field: "rating", msg: `want a number from 0 to 5, got "5.1"`},
		{name: "rating negative", row: map[string]string{"rating": "-1"}, field: "rating", msg: "from 0 to 5"},
		{name: "rating NaN", row: map[string]string{"rating": "NaN"}, field: "rating", msg: "from 0 to 5"},
		{name: "rating Inf", row: map[string]string{"rating": "Inf"}, field: "rating", msg: "from 0 to 5"},
		{name: "rating hex float", row: map[string]string{"rating": "0x1p2"}, field: "rating", msg: "from 0 to 5"},
		{name: "rating exponent", row: map[string]string{"rating": "4e0"}, field: "rating", msg: "from 0 to 5"},
		{name: "rating two dots", row: map[string]string{"rating": "4.5.1"}, field: "rating", msg: "from 0 to 5"},
		{name: "rating lone dot", row: map[string]string{"rating": "."}, field: "rating", msg: "from 0 to 5"},

		{name: "stock empty is 0", row: map[string]string{"stock": ""}, check: func(r Record) bool { return r.Stock == 0 }},
		{name: "stock negative", row: map[string]string{"stock": "-3"}, field: "stock", msg: "must not be negative, got -3"},
		{name: "stock fractional", row: map[string]string{"stock": "2.5"}, field: "stock", msg: "want a whole number"},

		{name: "book_id optional", row: map[string]string{"book_id": ""}, check: func(r Record) bool { return r.ID == nil }},
		{name: "book_id not a UUID", row: map[string]string{"book_id": "book-17"}, field: "book_id", msg: `not a UUID: "book-17"`},
		{name: "book_id nil UUID", row: map[string]string{"book_id": uuid.Nil.String()}, field: "book_id", msg: "nil UUID"},
		{name: "book_id upper case", row: map[string]string{"book_id": "6BA7B810-9DAD-11D1-80B4-00C04FD430C8"}, check: func(r Record) bool {
			return r.ID != nil && r.ID.String() == "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
		}},
	}
	header := strings.Split(fullHeader, ",")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			recs, bad, err := readAll(t, csvFile(t, header, c.row))
			if err != nil {
				t.Fatal(err)
			}
			if c.msg == "" {
				if len(bad) > 0 || len(recs) != 1 {
					t.Fatalf("want one valid record, got %v and errors %v", recs, bad)
				}
				if c.check != nil && !c.check(recs[0]) {
					t.Fatalf("record %+v fails the check", recs[0])
				}
				return
			}
			if len(bad) != 1 || len(recs) != 0 {
				t.Fatalf("want one row error, got records %v and errors %v", recs, bad)
			}
			e := bad[0]
			if e.Line != 2 || e.Field != c.field || !strings.Contains(e.Msg, c.msg) {
				t.Fatalf("got %#v, want line 2, field %q, message containing %q", e, c.field, c.msg)
			}
			if want := fmt.Sprintf("line 2: %s: %s", c.field, e.Msg); e.Error() != want {
				t.Fatalf("Error() = %q, want %q", e.Error(), want)
			}
		})
	}
}

func TestReaderColumnOrder(t *testing.T) {
	base := strings.Split(fullHeader, ",")
	rng := rand.New(rand.NewPCG(1, 2))
	orders := map[string][]string{
		"documented": base,
		"reversed":   {"stock", "rating", "isbn", "description", "categories", "price_cents", "authors", "title", "book_id"},
		"mixed case and spaces": {" Stock", "RATING ", "Isbn", "Description", "CATEGORIES", " price_cents ", "Authors",
			"Title", "Book_ID"},
	}
	for i := range 5 {
		p := append([]string(nil), base...)
		rng.Shuffle(len(p), func(i, j int) { p[i], p[j] = p[j], p[i] })
		orders[fmt.Sprintf("shuffle %d", i)] = p
	}
	for name, header := range orders {
		t.Run(name, func(t *testing.T) {
			recs, bad, err := readAll(t, csvFile(t, header, nil, nil))
			if err != nil || len(bad) > 0 {
				t.Fatalf("err = %v, bad rows %v", err, bad)
			}
			for i, rec := range recs {
				// validRow's description spans two lines, so row i starts at line 2+2i.
				if want := wantValid(2 + 2*i); !reflect.DeepEqual(rec, want) {
					t.Fatalf("record %d = %+v\nwant %+v", i, rec, want)
				}
			}
		})
	}
}

func TestReaderHeader(t *testing.T) {
	row := "The Title,Ann,100,9780306406157\n"
	cases := []struct {
		name  string
		input string
		err   string // substring of NewReader's error; "" for success
		want  Record // the first record when err == ""
	}{
		{name: "required columns only", input: "title,authors,price_cents,isbn\n" + row,
			want: Record{Line: 2, Title: "The Title", Authors: []string{"Ann"}, PriceCents: 100, ISBN: "9780306406157", StockUnknown: true, CategoriesUnknown: true}},
		{name: "byte order mark", input: "\uFEFFtitle,authors,price_cents,isbn\n" + row,
			want: Record{Line: 2, Title: "The Title", Authors: []string{"Ann"}, PriceCents: 100, ISBN: "9780306406157", StockUnknown: true, CategoriesUnknown: true}},
		{name: "byte order mark before a quoted name", input: "\uFEFF\"title\",authors,price_cents,isbn\n" + row,
			want: Record{Line: 2, Title: "The Title", Authors: []string{"Ann"}, PriceCents: 100, ISBN: "9780306406157", StockUnknown: true, CategoriesUnknown: true}},
		{name: "extra columns ignored", input: "format,title,authors,weight,price_cents,isbn,notes\nhardcover,T,Ann,1kg,100,9780306406157,\"a, b\"\n",
			want: Record{Line: 2, Title: "T", Authors: []string{"Ann"}, PriceCents: 100, ISBN: "9780306406157", StockUnknown: true, CategoriesUnknown: true}},
		{name: "blank lines before the header", input: "\n\ntitle,authors,price_cents,isbn\n" + row,
			want: Record{Line: 4, Title: "The Title", Authors: []string{"Ann"}, PriceCents: 100, ISBN: "9780306406157", StockUnknown: true, CategoriesUnknown: true}},
		{name: "missing one column", input: "title,authors,isbn\n", err: "missing required column(s) price_cents (have \"title,authors,isbn\")"},
		{name: "missing columns", input: "title,price_cents,rating\n", err: "missing required column(s) authors, isbn"},
		{name: "no header", input: "", err: "empty input, want a header line"},
		{name: "only a byte order mark", input: "\uFEFF", err: "empty input"},
		{name: "duplicate column", input: "title,authors,price_cents,isbn,Title\n", err: "column title appears twice"},
		{name: "malformed header", input: "title,\"authors,price_cents,isbn\n", err: "catalog CSV header: malformed CSV"},
	}
	// None of these headers has a stock column: the records leave stock alone.
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rd, err := NewReader(strings.NewReader(c.input))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("NewReader error = %v, want one containing %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			rec, err := rd.Next()
			if err != nil || !reflect.DeepEqual(rec, c.want) {
				t.Fatalf("Next() = %+v, %v; want %+v", rec, err, c.want)
			}
			if _, err := rd.Next(); err != io.EOF {
				t.Fatalf("second Next() error = %v, want io.EOF", err)
			}
		})
	}
}

func TestReaderHeaderOnly(t *testing.T) {
	rd, err := NewReader(strings.NewReader(fullHeader + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := rd.Next(); err != io.EOF {
			t.Fatalf("Next() error = %v, want io.EOF", err)
		}
	}
}

// TestReaderLines checks that records and errors carry the line where their record
// starts, across quoted commas, quotes, multi-line fields, blank lines, CRLF and
// malformed quoting, and that reading goes on after a malformed line.
func TestReaderLines(t *testing.T) {
	const h = "title,authors,price_cents,isbn,description\n"
	type want struct {
		line  int
		title string // "" for a RowError
		msg   string // substring of the RowError
	}
	cases := []struct {
		name  string
		input string
		want  []want
	}{
		{
			name: "quoted commas and quotes",
			input: h + `"Eats, Shoots and Leaves","Truss, Lynne",999,9780306406157,"He said ""hi"", then left"` + "\n" +
				"Second,B,1,9780306406157,x\n",
			want: []want{{line: 2, title: "Eats, Shoots and Leaves"}, {line: 3, title: "Second"}},
		},
		{
			name: "multi-line fields",
			input: h +
				"First,A,1,9780306406157,\"one\ntwo\n\nfour\"\n" + // lines 2-5
				"Second,B,1,9780306406157,\"x\ny\"\n" + // lines 6-7
				"Third,C,1,bad,\n" + // line 8
				"\n" + // line 9
				"Fourth,D,1,9780306406157,\n", // line 10
			want: []want{{line: 2, title: "First"}, {line: 6, title: "Second"}, {line: 8, msg: "isbn"}, {line: 10, title: "Fourth"}},
		},
		{
			name: "CRLF",
			input: strings.ReplaceAll(h, "\n", "\r\n") +
				"First,A,1,9780306406157,\"a\r\nb\"\r\n" +
				"Second,B,1,9780306406157,\r\n",
			want: []want{{line: 2, title: "First"}, {line: 4, title: "Second"}},
		},
		{
			name: "bare quote, then reading goes on",
			input: h +
				"First,A,1,9780306406157,\n" +
				"Bad \"quote\",B,1,9780306406157,\n" +
				"Third,C,1,9780306406157,\n",
			want: []want{{line: 2, title: "First"}, {line: 3, msg: "malformed CSV at column 5: bare \" in non-quoted-field"}, {line: 4, title: "Third"}},
		},
		{
			name: "stray quote after a quoted field",
			input: h +
				"\"Bad\"x,B,1,9780306406157,\n" +
				"Second,C,1,9780306406157,\n",
			want: []want{{line: 2, msg: "extraneous or missing \" in quoted-field"}, {line: 3, title: "Second"}},
		},
		{
			name: "bad quote inside a multi-line field",
			input: h +
				"First,A,1,9780306406157,\"line one\n" + // line 2
				"line \"two\"\n" + // line 3: the error
				"Third,C,1,9780306406157,\n",
			want: []want{{line: 2, msg: "malformed CSV at line 3, column 6"}, {line: 4, title: "Third"}},
		},
		{
			name: "quote never closed",
			input: h +
				"First,A,1,9780306406157,\n" +
				"Second,B,1,9780306406157,\"never closed\nmore\n",
			want: []want{{line: 2, title: "First"}, {line: 3, msg: "extraneous or missing \" in quoted-field"}},
		},
		{
			name:  "wrong number of fields",
			input: h + "Short,A,1\n" + "Long,A,1,9780306406157,,extra\n" + "Fine,A,1,9780306406157,\n",
			want:  []want{{line: 2, msg: "3 fields, the header has 5"}, {line: 3, msg: "6 fields, the header has 5"}, {line: 4, title: "Fine"}},
		},
	}
	// None of these headers has a stock column: the records leave stock alone.
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rd, err := NewReader(strings.NewReader(c.input))
			if err != nil {
				t.Fatal(err)
			}
			for i, w := range c.want {
				rec, err := rd.Next()
				var re *RowError
				switch {
				case w.title != "":
					if err != nil || rec.Line != w.line || rec.Title != w.title {
						t.Fatalf("item %d: got line %d %q, err %v; want line %d %q", i, rec.Line, rec.Title, err, w.line, w.title)
					}
				case !errors.As(err, &re) || re.Line != w.line || !strings.Contains(re.Error(), w.msg):
					t.Fatalf("item %d: got %+v, err %v; want a RowError at line %d containing %q", i, rec, err, w.line, w.msg)
				}
			}
			if _, err := rd.Next(); err != io.EOF {
				t.Fatalf("after the last item: err = %v, want io.EOF", err)
			}
		})
	}
}

// TestReaderDuplicateISBN documents that the reader passes duplicates on: the loader's
// upsert by ISBN lets the later row win.
func TestReaderDuplicateISBN(t *testing.T) {
	header := strings.Split(fullHeader, ",")
	recs, bad, err := readAll(t, csvFile(t, header,
		map[string]string{"title": "First", "isbn": "0-306-40615-2"},
		map[string]string{"title": "Second", "isbn": "9780306406157"}))
	if err != nil || len(bad) > 0 {
		t.Fatalf("err = %v, bad = %v", err, bad)
	}
	if len(recs) != 2 || recs[0].ISBN != recs[1].ISBN || recs[0].Title != "First" || recs[1].Title != "Second" {
		t.Fatalf("got %+v, want both rows with the same ISBN, in file order", recs)
	}
}

// TestReaderRecordTooLong feeds a quote that never closes, followed by more than
// MaxRecordBytes: the reader must stop with an error instead of buffering it all.
func TestReaderRecordTooLong(t *testing.T) {
	in := io.MultiReader(
		strings.NewReader("title,authors,price_cents,isbn\nOK,A,1,9780306406157\n\"unclosed,A,1,9780306406157\n"),
		&countingZeros{n: 64 << 20},
	)
	rd, err := NewReader(in)
	if err != nil {
		t.Fatal(err)
	}
	if rec, err := rd.Next(); err != nil || rec.Title != "OK" {
		t.Fatalf("first row: %+v, %v", rec, err)
	}
	_, err = rd.Next()
	var re *RowError
	if err == nil || errors.As(err, &re) || err == io.EOF || !strings.Contains(err.Error(), "the record after line 2 is longer than 1048576 bytes") {
		t.Fatalf("err = %v, want the fatal record-too-long error", err)
	}
	if _, again := rd.Next(); again != err {
		t.Fatalf("next call: %v, want the same error again", again)
	}
	if c := in; c == nil {
		t.Fatal()
	}
}

// countingZeros yields n bytes of 'a' without a newline or a quote.
type countingZeros struct{ n int }

func (c *countingZeros) Read(p []byte) (int, error) {
	if c.n == 0 {
		return 0, io.EOF
	}
	k := min(len(p), c.n)
	for i := range k {
		p[i] = 'a'
	}
	c.n -= k
	return k, nil
}

// TestReaderReadError: a failing input ends the file with a wrapped error, every call.
func TestReaderReadError(t *testing.T) {
	boom := errors.New("disk on fire")
	in := io.MultiReader(strings.NewReader("title,authors,price_cents,isbn\nOK,A,1,9780306406157\n"), &failingReader{boom})
	rd, err := NewReader(in)
	if err != nil {
		t.Fatal(err)
	}
	if rec, err := rd.Next(); err != nil || rec.Title != "OK" {
		t.Fatalf("first row: %+v, %v", rec, err)
	}
	for range 2 {
		if _, err := rd.Next(); !errors.Is(err, boom) || !strings.Contains(err.Error(), "after line 2") {
			t.Fatalf("err = %v, want it to wrap %v and name the line", err, boom)
		}
	}
}

type failingReader struct{ err error }

func (f *failingReader) Read([]byte) (int, error) { return 0, f.err }

func TestScan(t *testing.T) {
	header := strings.Split(fullHeader, ",")
	var rows []map[string]string
	for i := range 250 {
		row := map[string]string{"title": "Book " + strconv.Itoa(i)}
		if i%2 == 1 {
			row["price_cents"] = "-1" // 125 bad rows
		}
		rows = append(rows, row)
	}
	input := csvFile(t, header, rows...)

	t.Run("batches and stats", func(t *testing.T) {
		var sizes []int
		var titles []string
		st, err := Scan(strings.NewReader(input), 50, func(batch []Record) error {
			sizes = append(sizes, len(batch))
			for _, r := range batch {
				titles = append(titles, r.Title)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(sizes, []int{50, 50, 25}) {
			t.Errorf("batch sizes = %v, want [50 50 25]", sizes)
		}
		if len(titles) != 125 || titles[0] != "Book 0" || titles[124] != "Book 248" {
			t.Errorf("got %d titles, first %q, last %q", len(titles), titles[0], titles[len(titles)-1])
		}
		if st.Rows != 250 || st.Bad != 125 || len(st.Errors) != MaxRowErrors {
			t.Errorf("stats: %d rows, %d bad, %d errors kept; want 250, 125, %d", st.Rows, st.Bad, len(st.Errors), MaxRowErrors)
		}
		if e := st.Errors[0]; e.Line != 4 || e.Field != "price_cents" { // rows span two lines each
			t.Errorf("first error = %v, want line 4, price_cents", e)
		}
	})
	t.Run("callback error stops the scan", func(t *testing.T) {
		stop := errors.New("database gone")
		calls := 0
		st, err := Scan(strings.NewReader(input), 10, func([]Record) error {
			calls++
			if calls == 2 {
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) || calls != 2 || !strings.Contains(err.Error(), "rows up to line 78") {
			t.Fatalf("err = %v after %d calls, want %v after 2, naming line 78", err, calls, stop)
		}
		// Good and bad rows alternate: the 20th good row (the second full batch) is row 39.
		if st.Rows != 39 {
			t.Errorf("rows read = %d, want 39", st.Rows)
		}
	})
	t.Run("bad header", func(t *testing.T) {
		if _, err := Scan(strings.NewReader("title\n"), 10, func([]Record) error { return nil }); err == nil {
			t.Fatal("no error for a header without required columns")
		}
	})
	t.Run("batch size below 1", func(t *testing.T) {
		n := 0
		if _, err := Scan(strings.NewReader(csvFile(t, header, nil, nil)), 0, func(b []Record) error {
			n++
			if len(b) != 1 {
				t.Errorf("batch of %d, want 1", len(b))
			}
			return nil
		}); err != nil || n != 2 {
			t.Fatalf("err = %v, %d batches; want 2", err, n)
		}
	})
}

// streamRows writes a header and n rows to w, every 1000th of them bad, and closes w.
func streamRows(w *io.PipeWriter, n int) {
	bw := bufio.NewWriterSize(w, 64<<10)
	bw.WriteString("isbn,title,authors,price_cents,categories,description,rating,stock\n")
	line := make([]byte, 0, 512)
	for i := range n {
		body := fmt.Sprintf("978%09d", i)
		isbn := body + string(ISBN13CheckDigit(body))
		if i%1000 == 999 {
			isbn = body + "X"
		}
		line = append(line[:0], isbn...)
		line = append(line, ",The Book Number "...)
		line = strconv.AppendInt(line, int64(i), 10)
		line = append(line, `,Ann Author|Bob Writer,1299,Fiction > Science Fiction|History,"A long description, with a comma and
a line break, of book `...)
		line = strconv.AppendInt(line, int64(i), 10)
		line = append(line, "\",4.5,7\n"...)
		if _, err := bw.Write(line); err != nil {
			w.CloseWithError(err)
			return
		}
	}
	w.CloseWithError(bw.Flush())
}

// streamRowCount is the size of the streaming test: 1,000,000 rows normally, 200,000 with
// -short or the race detector (which slows parsing about tenfold).
func streamRowCount() int {
	if testing.Short() || raceEnabled {
		return 200_000
	}
	return 1_000_000
}

// TestReaderStreams feeds rows through a pipe (never a file in memory) and checks that
// the heap stays small while they are counted: memory must not grow with the input.
func TestReaderStreams(t *testing.T) {
	n := streamRowCount()
	pr, pw := io.Pipe()
	go streamRows(pw, n)
	t.Cleanup(func() { pr.Close() })

	const limit = 64 << 20
	var ms runtime.MemStats
	peak := uint64(0)
	sample := func() {
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapInuse)
	}
	st, err := Scan(pr, 500, func(batch []Record) error {
		if batch[0].Line%50_000 < 1_000 {
			sample()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sample()
	if st.Rows != n || st.Bad != n/1000 || len(st.Errors) != min(n/1000, MaxRowErrors) {
		t.Fatalf("stats: %d rows, %d bad, %d errors; want %d, %d, %d", st.Rows, st.Bad, len(st.Errors), n, n/1000, min(n/1000, MaxRowErrors))
	}
	if e := st.Errors[0]; e.Line != 2+999*2 || e.Field != "isbn" {
		t.Fatalf("first error %v, want line %d (two lines per row), isbn", e, 2+999*2)
	}
	t.Logf("%d rows (%d bad); peak HeapInuse %.1f MiB", st.Rows, st.Bad, float64(peak)/(1<<20))
	if peak > limit {
		t.Fatalf("peak HeapInuse %d bytes, want under %d", peak, limit)
	}
}

// BenchmarkReader1M reads a generated 1,000,000-row file through a pipe; b.N times.
func BenchmarkReader1M(b *testing.B) {
	const n = 1_000_000
	for b.Loop() {
		pr, pw := io.Pipe()
		go streamRows(pw, n)
		st, err := Scan(pr, 500, func([]Record) error { return nil })
		if err != nil || st.Rows != n {
			b.Fatalf("%d rows, %v", st.Rows, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/row")
}

func FuzzReader(f *testing.F) {
	f.Add([]byte(csvFile(f, strings.Split(fullHeader, ","), nil, map[string]string{"isbn": "bad"})))
	f.Add([]byte("\uFEFFtitle,authors,price_cents,isbn\nT,A,1,0-8044-2957-X\n"))
	f.Add([]byte("title,authors,price_cents,isbn,description\n\"a\nb\",A,1,9780306406157,\"x\"\"y\"\nB\"ad,A,1,1,\n\"open,A"))
	f.Add([]byte("isbn,price_cents,authors,title,rating,stock,book_id,categories\n9780306406157,5,A|B,T,4.5,3,6ba7b810-9dad-11d1-80b4-00c04fd430c8,a>b|c\n"))
	f.Add([]byte("title,authors,price_cents,isbn\r\n\r\nT,A,1,9780306406157\r\n,,,\r\nT,A\x00,1,9780306406157"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rd, err := NewReader(bytes.NewReader(data))
		if err != nil {
			return
		}
		last := 1
		for i := 0; ; i++ {
			if i > len(data)+1 {
				t.Fatalf("%d results from %d bytes: the reader does not advance", i, len(data))
			}
			rec, err := rd.Next()
			if err == io.EOF {
				return
			}
			var re *RowError
			if errors.As(err, &re) {
				if re.Line < 2 || re.Line <= last {
					t.Fatalf("RowError at line %d after line %d: %v", re.Line, last, re)
				}
				last = re.Line
				continue
			}
			if err != nil {
				t.Fatalf("fatal error on %d bytes in memory: %v", len(data), err)
			}
			if rec.Line < 2 || rec.Line <= last {
				t.Fatalf("record at line %d after line %d", rec.Line, last)
			}
			last = rec.Line
			checkRecord(t, rec)
		}
	})
}

// checkRecord asserts what every Record from the Reader promises.
func checkRecord(t *testing.T, r Record) {
	t.Helper()
	if n, err := NormalizeISBN(r.ISBN); err != nil || n != r.ISBN {
		t.Fatalf("line %d: ISBN %q is not normalised", r.Line, r.ISBN)
	}
	if r.Title == "" || utf8.RuneCountInString(r.Title) > MaxTitleLen || len(r.Authors) == 0 {
		t.Fatalf("line %d: bad title or authors: %+v", r.Line, r)
	}
	if r.PriceCents < 0 || r.PriceCents > MaxPriceCents || r.Rating < 0 || r.Rating > 5 || r.Stock < 0 {
		t.Fatalf("line %d: number out of range: %+v", r.Line, r)
	}
	if r.ID != nil && *r.ID == uuid.Nil {
		t.Fatalf("line %d: nil book id", r.Line)
	}
	strs := append([]string{r.Title, r.Description}, r.Authors...)
	for _, p := range r.Categories {
		if len(p) == 0 || len(p) > MaxCategoryDepth {
			t.Fatalf("line %d: category path %q", r.Line, p)
		}
		strs = append(strs, p...)
	}
	for _, s := range strs {
		if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 || s != strings.TrimSpace(s) {
			t.Fatalf("line %d: bad string %q", r.Line, s)
		}
	}
}
