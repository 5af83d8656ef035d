package catalog

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore"
)

// Limits of the CSV import format. Lengths count characters (runes), not bytes.
const (
	MaxTitleLen       = 500
	MaxAuthorLen      = 200 // per author
	MaxCategoryLen    = 200 // per name in a category path
	MaxCategoryDepth  = 5   // names in one category path
	MaxDescriptionLen = 20_000
	MaxPriceCents     = 10_000_000

	// MaxRecordBytes bounds one CSV record (all of its fields and quotes). A longer record
	// stops the read with an error: a file whose quote never closes would otherwise be
	// buffered whole, and no valid row comes near this size.
	MaxRecordBytes = 1 << 20

	// MaxRowErrors is how many RowErrors Scan keeps; further bad rows are only counted.
	MaxRowErrors = 100
)

// Columns of the import format, in the documented order; a file may order them freely.
const (
	colBookID = iota
	colTitle
	colAuthors
	colPriceCents
	colCategories
	colDescription
	colISBN
	colRating
	colStock
	numCols
)

var columns = [numCols]struct {
	name     string
	required bool
}{
	colBookID:      {"book_id", false},
	colTitle:       {"title", true},
	colAuthors:     {"authors", true},
	colPriceCents:  {"price_cents", true},
	colCategories:  {"categories", false},
	colDescription: {"description", false},
	colISBN:        {"isbn", true},
	colRating:      {"rating", false},
	colStock:       {"stock", false},
}

// RowError is a data row that was rejected: malformed CSV or a field that breaks a rule
// of the format. The rest of the file is still readable; Reader.Next moves on to the next
// row. Error returns "line 17: isbn: <what is wrong>".
type RowError struct {
	// Line is the 1-based line of the file where the row starts (a quoted field may span
	// several lines).
	Line int
	// Field is the column the error is about; "" for a row-level problem (bad quoting, a
	// wrong number of fields).
	Field string
	Msg   string
}

func (e *RowError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	}
	return fmt.Sprintf("line %d: %s: %s", e.Line, e.Field, e.Msg)
}

// Reader streams Records out of a catalog CSV file: a header line naming the columns
// book_id, title, authors, price_cents, categories, description, isbn, rating, stock in
// any order (names match case-insensitively; title, authors, price_cents and isbn are
// required, the others optional; unknown columns are ignored), then one book per record.
// Lists (authors, categories) are separated by "|"; a category is a path from a top-level
// genre down, "Fiction > Science Fiction". Fields are trimmed; empty rating and stock mean
// 0; without a stock column the records leave stock unchanged (StockUnknown).
//
// Memory does not depend on the file's size: one record is held at a time and a record
// may not exceed MaxRecordBytes.
//
// The Reader does not look for duplicates: two rows with the same ISBN both come out,
// and loading (an upsert by ISBN) keeps the later one.
type Reader struct {
	csv     *csv.Reader
	src     *limitedReader
	cols    [numCols]int // field index of each column; -1 when the file lacks it
	nfields int          // fields in the header, and so in every row
	line    int          // start line of the last record read, for fatal errors
	err     error        // sticky: io.EOF or a failure after which nothing is readable
}

// readBufSize is the read buffer; the record limit allows for what it reads ahead.
const readBufSize = 64 << 10

// NewReader reads and checks the header of a catalog CSV file. It fails when the header
// is missing or malformed, names a column twice, or lacks required columns (the error
// names them). A UTF-8 byte order mark before the header is skipped.
func NewReader(r io.Reader) (*Reader, error) {
	src := &limitedReader{r: r, limit: MaxRecordBytes + 2*readBufSize}
	br := bufio.NewReaderSize(src, readBufSize)
	if b, err := br.Peek(3); err == nil && string(b) == "\uFEFF" {
		br.Discard(3)
	}
	cr := csv.NewReader(br) // uses br as is: it is a big enough *bufio.Reader
	cr.ReuseRecord = true
	cr.FieldsPerRecord = -1
	cr.LazyQuotes = false
	rd := &Reader{csv: cr, src: src}

	header, err := rd.read()
	switch {
	case err == io.EOF:
		return nil, errors.New("catalog CSV: empty input, want a header line naming the columns")
	case err != nil:
		var re *RowError
		if errors.As(err, &re) {
			return nil, fmt.Errorf("catalog CSV header: %s", re.Msg)
		}
		return nil, err
	}
	for c := range rd.cols {
		rd.cols[c] = -1
	}
	for i, h := range header {
		name := strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\uFEFF")))
		for c, col := range columns {
			if name != col.name {
				continue
			}
			if rd.cols[c] >= 0 {
				return nil, fmt.Errorf("catalog CSV header: column %s appears twice", col.name)
			}
			rd.cols[c] = i
		}
	}
	var missing []string
	for c, col := range columns {
		if col.required && rd.cols[c] < 0 {
			missing = append(missing, col.name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("catalog CSV header: missing required column(s) %s (have %s)",
			strings.Join(missing, ", "), quoteShort(strings.Join(header, ","), 200))
	}
	rd.nfields = len(header)
	return rd, nil
}

// Next returns the next row as a validated Record. A bad row returns a *RowError, and the
// following call reads on. At the end it returns io.EOF. Any other error (reading the
// input failed, or a record exceeds MaxRecordBytes) ends the file: later calls return it
// again.
func (r *Reader) Next() (Record, error) {
	fields, err := r.read()
	if err != nil {
		return Record{}, err
	}
	return r.record(fields)
}

// read returns the next CSV record, a *RowError for a malformed one, or the sticky error.
func (r *Reader) read() ([]string, error) {
	if r.err != nil {
		return nil, r.err
	}
	fields, err := r.csv.Read()
	// Whatever happened, the next record may take MaxRecordBytes beyond this one (plus
	// what the buffer reads ahead).
	r.src.limit = r.csv.InputOffset() + MaxRecordBytes + 2*readBufSize
	if err == nil {
		r.line, _ = r.csv.FieldPos(0)
		return fields, nil
	}
	var pe *csv.ParseError
	switch {
	case err == io.EOF:
		r.err = io.EOF
	case errors.As(err, &pe) && (errors.Is(pe.Err, csv.ErrQuote) || errors.Is(pe.Err, csv.ErrBareQuote)):
		// encoding/csv drops the rest of the offending line and resumes at the next one.
		r.line = pe.StartLine
		msg := fmt.Sprintf("malformed CSV at column %d: %v", pe.Column, pe.Err)
		if pe.Line != pe.StartLine {
			msg = fmt.Sprintf("malformed CSV at line %d, column %d: %v", pe.Line, pe.Column, pe.Err)
		}
		return nil, &RowError{Line: pe.StartLine, Msg: msg}
	case errors.Is(err, errRecordTooLong):
		r.err = fmt.Errorf("catalog CSV: the record after line %d is longer than %d bytes (a quote that never closes?)",
			r.line, MaxRecordBytes)
	default:
		r.err = fmt.Errorf("read catalog CSV after line %d: %w", r.line, err)
	}
	return nil, r.err
}

// record validates one row; the checks follow the documented column order.
func (r *Reader) record(fields []string) (Record, error) {
	line := r.line
	if len(fields) != r.nfields {
		return Record{}, &RowError{Line: line, Msg: fmt.Sprintf("%d fields, the header has %d", len(fields), r.nfields)}
	}
	var val [numCols]string
	for c, i := range r.cols {
		if i < 0 {
			continue
		}
		s := fields[i]
		if !utf8.ValidString(s) {
			return Record{}, &RowError{Line: line, Field: columns[c].name, Msg: "not valid UTF-8"}
		}
		if strings.IndexByte(s, 0) >= 0 {
			return Record{}, &RowError{Line: line, Field: columns[c].name, Msg: "contains a NUL byte"}
		}
		s = strings.TrimSpace(s)
		// Only a description may have line breaks and tabs.
		if c != colDescription {
			if i := strings.IndexFunc(s, unicode.IsControl); i >= 0 {
				r, _ := utf8.DecodeRuneInString(s[i:])
				return Record{}, &RowError{Line: line, Field: columns[c].name,
					Msg: fmt.Sprintf("contains a control character (%U)", r)}
			}
		}
		val[c] = s
	}
	rec := Record{Line: line}
	bad := func(c int, format string, args ...any) (Record, error) {
		return Record{}, &RowError{Line: line, Field: columns[c].name, Msg: fmt.Sprintf(format, args...)}
	}

	if s := val[colBookID]; s != "" {
		id, err := uuid.Parse(s)
		if err != nil {
			return bad(colBookID, "not a UUID: %s", quoteShort(s, 40))
		}
		if id == uuid.Nil {
			return bad(colBookID, "the nil UUID is not a book id")
		}
		rec.ID = &id
	}

	rec.Title = val[colTitle]
	switch n := utf8.RuneCountInString(rec.Title); {
	case n == 0:
		return bad(colTitle, "required")
	case n > MaxTitleLen:
		return bad(colTitle, "%d characters, at most %d allowed", n, MaxTitleLen)
	}

	for _, a := range strings.Split(val[colAuthors], "|") {
		a = strings.Join(strings.Fields(a), " ")
		if a == "" {
			continue // "A|" and "A||B" are forgiven
		}
		if n := utf8.RuneCountInString(a); n > MaxAuthorLen {
			return bad(colAuthors, "author %s has %d characters, at most %d allowed", quoteShort(a, 40), n, MaxAuthorLen)
		}
		rec.Authors = append(rec.Authors, a)
	}
	if len(rec.Authors) == 0 {
		return bad(colAuthors, "at least one author required")
	}

	price, msg := parseCount(val[colPriceCents], true, MaxPriceCents)
	if msg != "" {
		if strings.Contains(val[colPriceCents], ".") {
			msg += " (the price is in cents: 1299, not 12.99)"
		}
		return bad(colPriceCents, "%s", msg)
	}
	rec.PriceCents = price

	if s := val[colCategories]; s != "" {
		for _, p := range strings.Split(s, "|") {
			if strings.TrimSpace(p) == "" {
				continue
			}
			path, msg := parseCategoryPath(p)
			if msg != "" {
				return bad(colCategories, "%s", msg)
			}
			rec.Categories = append(rec.Categories, path)
		}
	}

	rec.Description = val[colDescription]
	if n := utf8.RuneCountInString(rec.Description); n > MaxDescriptionLen {
		return bad(colDescription, "%d characters, at most %d allowed", n, MaxDescriptionLen)
	}

	if val[colISBN] == "" {
		return bad(colISBN, "required")
	}
	isbn, err := NormalizeISBN(val[colISBN])
	if err != nil {
		return bad(colISBN, "%v", err)
	}
	rec.ISBN = isbn

	if s := val[colRating]; s != "" {
		v, ok := parseRating(s)
		if !ok {
			return bad(colRating, "want a number from 0 to 5, got %s", quoteShort(s, 20))
		}
		rec.Rating = v
	}

	stock, msg := parseCount(val[colStock], false, bookstore.MaxStock)
	if msg != "" {
		return bad(colStock, "%s", msg)
	}
	rec.Stock = stock
	// A file without a stock column (a price list, say) leaves stock alone; an empty cell
	// in a stock column still means 0.
	rec.StockUnknown = r.cols[colStock] < 0
	rec.CategoriesUnknown = r.cols[colCategories] < 0
	return rec, nil
}

// parseCount parses a non-negative decimal integer at most max (no bound when max < 0).
// It returns a message for the RowError when s is not one; "" is 0 unless required.
func parseCount(s string, required bool, max int64) (int64, string) {
	if s == "" {
		if required {
			return 0, "required"
		}
		return 0, ""
	}
	v, err := strconv.ParseInt(s, 10, 64)
	switch {
	case errors.Is(err, strconv.ErrRange):
		return 0, fmt.Sprintf("%s is out of range", quoteShort(s, 20))
	case err != nil:
		return 0, fmt.Sprintf("want a whole number, got %s", quoteShort(s, 20))
	case v < 0:
		return 0, fmt.Sprintf("must not be negative, got %d", v)
	case max >= 0 && v > max:
		return 0, fmt.Sprintf("%d is more than the maximum %d", v, max)
	}
	return v, ""
}

// parseRating accepts plain decimals ("4", "4.5", ".5") from 0 to 5; ParseFloat alone
// would also take "NaN", "Inf" and hex floats.
func parseRating(s string) (float64, bool) {
	if strings.Trim(s, "0123456789.") != "" || strings.Count(s, ".") > 1 || s == "." {
		return 0, false
	}
	v, err := strconv.ParseFloat(s, 64)
	return v, err == nil && v >= 0 && v <= 5
}

// parseCategoryPath splits "Fiction > Science Fiction" into trimmed names with single
// spaces. Every name must be non-empty and have a slug: the store names categories by
// slug.
func parseCategoryPath(p string) ([]string, string) {
	parts := strings.Split(p, ">")
	if len(parts) > MaxCategoryDepth {
		return nil, fmt.Sprintf("category path %s has %d levels, at most %d allowed", quoteShort(p, 60), len(parts), MaxCategoryDepth)
	}
	path := make([]string, 0, len(parts))
	for _, name := range parts {
		name = strings.Join(strings.Fields(name), " ")
		switch n := utf8.RuneCountInString(name); {
		case n == 0:
			return nil, fmt.Sprintf("empty name in category path %s", quoteShort(strings.TrimSpace(p), 60))
		case n > MaxCategoryLen:
			return nil, fmt.Sprintf("category name %s has %d characters, at most %d allowed", quoteShort(name, 40), n, MaxCategoryLen)
		case Slug(name) == "":
			return nil, fmt.Sprintf("category name %s has no letter or digit", quoteShort(name, 40))
		}
		path = append(path, name)
	}
	return path, ""
}

// Stats summarises a Scan.
type Stats struct {
	Rows int // data rows read, good and bad
	Bad  int // rows rejected
	// Errors are the first MaxRowErrors rejected rows, in file order; Bad counts them all.
	Errors []*RowError
}

// Scan reads a whole catalog CSV file and calls fn with batches of at most batchSize
// valid records (batchSize < 1 means 1), so a caller can load each batch in one
// transaction with memory bounded by the batch. fn must not keep the batch slice after
// it returns (it is reused; the Records themselves may be kept). Bad rows are skipped and
// reported in Stats. Scan stops at the first error from fn or a fatal read error and
// returns it with the Stats so far.
func Scan(r io.Reader, batchSize int, fn func(batch []Record) error) (Stats, error) {
	var st Stats
	rd, err := NewReader(r)
	if err != nil {
		return st, err
	}
	batchSize = max(batchSize, 1)
	batch := make([]Record, 0, min(batchSize, 4096))
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := fn(batch); err != nil {
			return fmt.Errorf("catalog rows up to line %d: %w", batch[len(batch)-1].Line, err)
		}
		clear(batch) // drop references so the caller's records can be collected
		batch = batch[:0]
		return nil
	}
	for {
		rec, err := rd.Next()
		if err == io.EOF {
			return st, flush()
		}
		var re *RowError
		switch {
		case errors.As(err, &re):
			st.Rows++
			st.Bad++
			if len(st.Errors) < MaxRowErrors {
				st.Errors = append(st.Errors, re)
			}
			continue
		case err != nil:
			return st, err
		}
		st.Rows++
		batch = append(batch, rec)
		if len(batch) == batchSize {
			if err := flush(); err != nil {
				return st, err
			}
		}
	}
}

var errRecordTooLong = errors.New("CSV record too long")

// limitedReader fails once more than limit bytes have been read. The Reader raises the
// limit after each record, so it bounds the size of one record, not of the file.
type limitedReader struct {
	r        io.Reader
	n, limit int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n >= l.limit {
		return 0, errRecordTooLong
	}
	if rem := l.limit - l.n; int64(len(p)) > rem {
		p = p[:rem]
	}
	k, err := l.r.Read(p)
	l.n += int64(k)
	return k, err
}
