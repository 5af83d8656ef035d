package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shopfront/bookstore"
)

// Books reads the catalog's books.
type Books struct{ db *DB }

const bookCols = `b.id, b.isbn, b.title, b.description, b.price_cents, b.currency, b.rating,
	b.rating_count, b.sales_count, b.published_on, b.publisher, b.language, b.page_count, b.cover_url`

func scanBook(row pgx.Row, extra ...any) (*bookstore.Book, error) {
	var b bookstore.Book
	var published *time.Time
	dest := append([]any{&b.ID, &b.ISBN, &b.Title, &b.Description, &b.PriceCents, &b.Currency,
		&b.Rating, &b.RatingCount, &b.SalesCount, &published, &b.Publisher, &b.Language,
		&b.PageCount, &b.CoverURL}, extra...)
	if err := row.Scan(dest...); err != nil {
		return nil, err
	}
	if published != nil {
		b.PublishedAt = &bookstore.Date{Time: *published}
	}
	return &b, nil
}

func itoa(n int) string { return strconv.Itoa(n) }

// args accumulates positional query arguments.
type args []any

func (a *args) add(v any) string {
	*a = append(*a, v)
	return "$" + itoa(len(*a))
}

// where renders f as SQL conditions on books alias b.
func where(f bookstore.BookFilter, a *args) []string {
	var conds []string
	if len(f.CategoryIDs) > 0 {
		conds = append(conds, "b.id IN (SELECT book_id FROM book_categories WHERE category_id = ANY("+a.add(f.CategoryIDs)+"::UUID[]))")
	}
	if f.AuthorID != nil {
		conds = append(conds, "b.id IN (SELECT book_id FROM book_authors WHERE author_id = "+a.add(*f.AuthorID)+"::UUID)")
	}
	if f.MinPriceCents != nil {
		conds = append(conds, "b.price_cents >= "+a.add(*f.MinPriceCents)+"::INT8")
	}
	if f.MaxPriceCents != nil {
		conds = append(conds, "b.price_cents <= "+a.add(*f.MaxPriceCents)+"::INT8")
	}
	if f.MinRating != nil {
		conds = append(conds, "b.rating >= "+a.add(*f.MinRating)+"::FLOAT8")
	}
	if f.InStock != nil {
		in := "EXISTS (SELECT 1 FROM inventory i WHERE i.book_id = b.id AND i.stock > 0)"
		if !*f.InStock {
			in = "NOT " + in
		}
		conds = append(conds, in)
	}
	return conds
}

// ValidateFilter rejects contradictory or out-of-range filters with BAD_USER_INPUT.
func ValidateFilter(f bookstore.BookFilter) error {
	if f.MinPriceCents != nil && *f.MinPriceCents < 0 {
		return bookstore.InvalidField("filter.minPriceCents", "must be >= 0")
	}
	if f.MaxPriceCents != nil && *f.MaxPriceCents < 0 {
		return bookstore.InvalidField("filter.maxPriceCents", "must be >= 0")
	}
	if f.MinPriceCents != nil && f.MaxPriceCents != nil && *f.MinPriceCents > *f.MaxPriceCents {
		return bookstore.InvalidField("filter.maxPriceCents", "must be >= minPriceCents")
	}
	if f.MinRating != nil && (*f.MinRating < 0 || *f.MinRating > 5) {
		return bookstore.InvalidField("filter.minRating", "must be between 0 and 5")
	}
	return nil
}

// List returns one page of books matching filter in the given order, resuming after the
// cursor when after is not empty. first must already be within 1..MaxPageSize. The page's
// Total is left nil: counting is a separate query (Count) that callers run only when asked.
func (s *Books) List(ctx context.Context, f bookstore.BookFilter, sort bookstore.BookSort, first int, after string) (*bookstore.BookPage, error) {
	spec, err := specFor(sort)
	if err != nil {
		return nil, err
	}
	if err := ValidateFilter(f); err != nil {
		return nil, err
	}
	var a args
	conds := where(f, &a)
	if after != "" {
		cond, vals, err := spec.after(sort, "b", after, len(a)+1)
		if err != nil {
			return nil, err
		}
		a = append(a, vals...)
		conds = append(conds, cond)
	}
	q := "SELECT " + bookCols + " FROM books b"
	if len(conds) > 0 {
		q += " WHERE " + strings.Join(conds, " AND ")
	}
	q += " ORDER BY " + spec.orderBy("b") + " LIMIT " + a.add(first+1)
	rows, err := s.db.Pool.Query(ctx, q, a...)
	if err != nil {
		return nil, fmt.Errorf("list books: %w", err)
	}
	defer rows.Close()
	var books []*bookstore.Book
	for rows.Next() {
		b, err := scanBook(rows)
		if err != nil {
			return nil, fmt.Errorf("scan book: %w", err)
		}
		books = append(books, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list books: %w", err)
	}
	page := newBookPage(spec, sort, books, first, after != "")
	page.Filter = f
	return page, nil
}

func newBookPage(spec sortSpec, sort bookstore.BookSort, books []*bookstore.Book, first int, hasPrev bool) *bookstore.BookPage {
	hasNext := len(books) > first
	if hasNext {
		books = books[:first]
	}
	page := &bookstore.BookPage{Edges: make([]bookstore.BookEdge, len(books))}
	cursors := make([]string, len(books))
	for i, b := range books {
		cursors[i] = spec.cursor(sort, b)
		page.Edges[i] = bookstore.BookEdge{Cursor: cursors[i], Node: b}
	}
	page.PageInfo = bookstore.NewPageInfo(cursors, hasNext, hasPrev)
	return page
}

// Count returns the number of books matching f.
func (s *Books) Count(ctx context.Context, f bookstore.BookFilter) (int64, error) {
	var a args
	var q string
	switch {
	case f.OnlyCategories():
		// The common case (a category page) counts in the link table's index alone,
		// without touching books: several times cheaper than the general query.
		q = "SELECT count(DISTINCT book_id) FROM book_categories WHERE category_id = ANY(" + a.add(f.CategoryIDs) + "::UUID[])"
	case f.OnlyAuthor():
		q = "SELECT count(*) FROM book_authors WHERE author_id = " + a.add(*f.AuthorID) + "::UUID"
	default:
		q = "SELECT count(*) FROM books b"
		if conds := where(f, &a); len(conds) > 0 {
			q += " WHERE " + strings.Join(conds, " AND ")
		}
	}
	var n int64
	if err := s.db.Pool.QueryRow(ctx, q, a...).Scan(&n); err != nil {
		return 0, fmt.Errorf("count books: %w", err)
	}
	return n, nil
}

// ByIDs returns the books with the given ids, in any order; missing ids are absent.
func (s *Books) ByIDs(ctx context.Context, ids []uuid.UUID) ([]*bookstore.Book, error) {
	rows, err := s.db.Pool.Query(ctx, booksByIDsSQL, ids)
	if err != nil {
		return nil, fmt.Errorf("books by id: %w", err)
	}
	return collectBooks(rows)
}

const booksByIDsSQL = "SELECT " + bookCols + " FROM books b WHERE b.id = ANY($1::UUID[])"

// ByIDsWithStock is ByIDs with the books' stock (0 for a book without an inventory
// row), in one round trip.
func (s *Books) ByIDsWithStock(ctx context.Context, ids []uuid.UUID) ([]*bookstore.Book, map[uuid.UUID]int64, error) {
	b := &pgx.Batch{}
	var books []*bookstore.Book
	var stock map[uuid.UUID]int64
	b.Queue(booksByIDsSQL, ids).Query(func(rows pgx.Rows) error {
		var err error
		books, err = collectBooks(rows)
		return err
	})
	b.Queue(stockSQL, ids).Query(func(rows pgx.Rows) error {
		var err error
		stock, err = collectStock(rows, len(ids))
		return err
	})
	if err := s.db.Pool.SendBatch(ctx, b).Close(); err != nil {
		return nil, nil, fmt.Errorf("books by id with stock: %w", err)
	}
	return books, stock, nil
}

// ByISBN returns the book with the 13-digit isbn, or a NOT_FOUND error.
func (s *Books) ByISBN(ctx context.Context, isbn string) (*bookstore.Book, error) {
	b, err := scanBook(s.db.Pool.QueryRow(ctx, "SELECT "+bookCols+" FROM books b WHERE b.isbn = $1", isbn))
	if err == pgx.ErrNoRows {
		return nil, bookstore.Errorf(bookstore.CodeNotFound, "no book with ISBN %s", isbn)
	}
	if err != nil {
		return nil, fmt.Errorf("book by isbn: %w", err)
	}
	return b, nil
}

func collectBooks(rows pgx.Rows) ([]*bookstore.Book, error) {
	defer rows.Close()
	var books []*bookstore.Book
	for rows.Next() {
		b, err := scanBook(rows)
		if err != nil {
			return nil, fmt.Errorf("scan book: %w", err)
		}
		books = append(books, b)
	}
	return books, rows.Err()
}

// Group is a set of books listed together: a category (with its subcategories) or an
// author. Key identifies the group in results; Members are the category ids or the
// single author id whose books belong to it.
type Group struct {
	Key     uuid.UUID
	Members []uuid.UUID
}

// GroupKind says which relation a Group's members refer to.
type GroupKind int

const (
	ByCategory GroupKind = iota
	ByAuthor
)

// ListGrouped returns the first page of books of each group in one query, each page with
// its Total. It serves nested lists (every category's or author's books) without a query
// per parent. A cursor applies to every group: it is a position in the sort order.
func (s *Books) ListGrouped(ctx context.Context, kind GroupKind, groups []Group, sort bookstore.BookSort, first int, after string) (map[uuid.UUID]*bookstore.BookPage, error) {
	spec, err := specFor(sort)
	if err != nil {
		return nil, err
	}
	var keys, members []uuid.UUID
	for _, g := range groups {
		for _, m := range g.Members {
			keys, members = append(keys, g.Key), append(members, m)
		}
	}
	join := "book_categories x ON x.category_id = g.member"
	if kind == ByAuthor {
		join = "book_authors x ON x.author_id = g.member"
	}
	a := args{keys, members}
	cond := "TRUE"
	if after != "" {
		c, vals, err := spec.after(sort, "b", after, 3)
		if err != nil {
			return nil, err
		}
		cond, a = c, append(a, vals...)
	}
	// m: the distinct (group, book) pairs (a book may sit in a category and its child);
	// t: each group's total; r: the rows after the cursor, numbered per group.
	q := `WITH m AS (
		SELECT DISTINCT g.grp, x.book_id
		FROM unnest($1::UUID[], $2::UUID[]) AS g (grp, member) JOIN ` + join + `
	), t AS (
		SELECT m.grp, m.book_id, count(*) OVER (PARTITION BY m.grp) AS total FROM m
	), r AS (
		SELECT t.grp, t.total, ` + bookCols + `,
			row_number() OVER (PARTITION BY t.grp ORDER BY ` + spec.orderBy("b") + `) AS rn
		FROM t JOIN books b ON b.id = t.book_id
		WHERE ` + cond + `
	)
	SELECT ` + strings.ReplaceAll(bookCols, "b.", "") + `, grp, total
	FROM r WHERE rn <= ` + a.add(first+1) + ` ORDER BY grp, rn`
	rows, err := s.db.Pool.Query(ctx, q, a...)
	if err != nil {
		return nil, fmt.Errorf("list grouped books: %w", err)
	}
	defer rows.Close()
	byGroup := make(map[uuid.UUID][]*bookstore.Book, len(groups))
	totals := make(map[uuid.UUID]int64, len(groups))
	for rows.Next() {
		var grp uuid.UUID
		var total int64
		b, err := scanBook(rows, &grp, &total)
		if err != nil {
			return nil, fmt.Errorf("scan grouped book: %w", err)
		}
		byGroup[grp] = append(byGroup[grp], b)
		totals[grp] = total
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list grouped books: %w", err)
	}
	pages := make(map[uuid.UUID]*bookstore.BookPage, len(groups))
	for _, g := range groups {
		p := newBookPage(spec, sort, byGroup[g.Key], first, after != "")
		// A group with no rows after the cursor reports no total: it is counted on demand.
		if total, ok := totals[g.Key]; ok || after == "" {
			p.Total = &total
		}
		if kind == ByAuthor {
			p.Filter.AuthorID = &g.Key
		} else {
			p.Filter.CategoryIDs = g.Members
		}
		pages[g.Key] = p
	}
	return pages, nil
}
