package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/catalog"
)

// LoadError is a record the database refused (say, a book_id that already belongs to
// another ISBN). Nothing of that record was written.
type LoadError struct {
	Line int
	ISBN string
	Err  error
}

func (e *LoadError) Error() string {
	return fmt.Sprintf("line %d (ISBN %s): %v", e.Line, e.ISBN, e.Err)
}

// Load upserts a batch of catalog records by ISBN: books, their authors and categories
// (created when new), stock, and reviews (idempotent by id). The batch is one
// transaction; if the database refuses it for a data reason, each record is retried in
// its own transaction so that good records load and each bad one is reported as a
// LoadError — never half a record. Other failures (connection, context) return err.
//
// Within a batch a later record with the same ISBN wins.
func (db *DB) Load(ctx context.Context, recs []catalog.Record) ([]*LoadError, error) {
	recs = dedupeByISBN(recs)
	err := db.ExecuteTx(ctx, func(tx pgx.Tx) error { return db.loadBatch(ctx, tx, recs) })
	if err == nil || !isDataError(err) || len(recs) == 1 {
		if err != nil && isDataError(err) {
			return []*LoadError{{Line: recs[0].Line, ISBN: recs[0].ISBN, Err: dataErr(err)}}, nil
		}
		return nil, err
	}
	var failed []*LoadError
	for _, r := range recs {
		one := []catalog.Record{r}
		err := db.ExecuteTx(ctx, func(tx pgx.Tx) error { return db.loadBatch(ctx, tx, one) })
		switch {
		case err == nil:
		case isDataError(err):
			failed = append(failed, &LoadError{Line: r.Line, ISBN: r.ISBN, Err: dataErr(err)})
		default:
			return failed, err
		}
	}
	return failed, nil
}

// isDataError reports whether the database refused the data itself (SQLSTATE classes 22,
// data exception, and 23, integrity constraint violation), as opposed to failing.
func isDataError(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (strings.HasPrefix(pe.Code, "22") || strings.HasPrefix(pe.Code, "23"))
}

func dataErr(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		msg := pe.Message
		if pe.ConstraintName != "" {
			msg += " (" + pe.ConstraintName + ")"
		}
		return errors.New(msg)
	}
	return err
}

func dedupeByISBN(recs []catalog.Record) []catalog.Record {
	last := make(map[string]int, len(recs))
	for i, r := range recs {
		last[r.ISBN] = i
	}
	if len(last) == len(recs) {
		return recs
	}
	out := make([]catalog.Record, 0, len(last))
	for i, r := range recs {
		if last[r.ISBN] == i {
			out = append(out, r)
		}
	}
	return out
}

func (db *DB) loadBatch(ctx context.Context, tx pgx.Tx, recs []catalog.Record) error {
	catIDs, err := ensureCategories(ctx, tx, recs)
	if err != nil {
		return err
	}
	authorIDs, err := ensureAuthors(ctx, tx, recs)
	if err != nil {
		return err
	}
	bookIDs, err := upsertBooks(ctx, tx, recs)
	if err != nil {
		return err
	}
	if err := db.linkBooks(ctx, tx, recs, bookIDs, authorIDs, catIDs); err != nil {
		return err
	}
	return enqueue(ctx, tx, TopicBookChanged, bookIDs)
}

// authorKey is the dedup key of an author name: lower case, single spaces.
func authorKey(name string) string { return strings.ToLower(strings.Join(strings.Fields(name), " ")) }

func ensureAuthors(ctx context.Context, tx pgx.Tx, recs []catalog.Record) (map[string]uuid.UUID, error) {
	seen := map[string]bool{}
	var names, keys []string
	for _, r := range recs {
		for _, a := range r.Authors {
			if k := authorKey(a); !seen[k] {
				seen[k] = true
				names, keys = append(names, strings.Join(strings.Fields(a), " ")), append(keys, k)
			}
		}
	}
	if _, err := tx.Exec(ctx, `
		INSERT INTO authors (name, name_key)
		SELECT * FROM unnest($1::TEXT[], $2::TEXT[])
		ON CONFLICT (name_key) DO NOTHING`, names, keys); err != nil {
		return nil, fmt.Errorf("insert authors: %w", err)
	}
	rows, err := tx.Query(ctx, `SELECT name_key, id FROM authors WHERE name_key = ANY($1::TEXT[])`, keys)
	if err != nil {
		return nil, fmt.Errorf("select authors: %w", err)
	}
	ids := make(map[string]uuid.UUID, len(keys))
	for rows.Next() {
		var k string
		var id uuid.UUID
		if err := rows.Scan(&k, &id); err != nil {
			rows.Close()
			return nil, err
		}
		ids[k] = id
	}
	rows.Close()
	return ids, rows.Err()
}

// ensureCategories creates the categories named by the records' paths and returns the id
// of each path's last element, keyed by pathKey. A path's slug is its name's slug; a
// subcategory whose slug is taken by a category elsewhere in the tree gets its parent's
// slug as a prefix ("Romance > Historical" -> "romance-historical").
func ensureCategories(ctx context.Context, tx pgx.Tx, recs []catalog.Record) (map[string]uuid.UUID, error) {
	type node struct {
		id     uuid.UUID
		parent *uuid.UUID
	}
	bySlug := map[string]node{}
	rows, err := tx.Query(ctx, `SELECT slug, id, parent_id FROM categories`)
	if err != nil {
		return nil, fmt.Errorf("select categories: %w", err)
	}
	for rows.Next() {
		var slug string
		var n node
		if err := rows.Scan(&slug, &n.id, &n.parent); err != nil {
			rows.Close()
			return nil, err
		}
		bySlug[slug] = n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	sameParent := func(a, b *uuid.UUID) bool { return (a == nil && b == nil) || (a != nil && b != nil && *a == *b) }
	out := map[string]uuid.UUID{}
	for _, r := range recs {
		for _, path := range r.Categories {
			if _, done := out[pathKey(path)]; done {
				continue
			}
			var parent *uuid.UUID
			prefix := ""
			for _, name := range path {
				slug := catalog.Slug(name)
				if n, ok := bySlug[slug]; ok && !sameParent(n.parent, parent) {
					slug = catalog.Slug(prefix + " " + name)
				}
				n, ok := bySlug[slug]
				if !ok {
					// A concurrent import may create the same slug: keep whichever won.
					if err := tx.QueryRow(ctx, `
						INSERT INTO categories (slug, name, parent_id) VALUES ($1, $2, $3)
						ON CONFLICT (slug) DO UPDATE SET slug = excluded.slug
						RETURNING id, parent_id`, slug, name, parent).Scan(&n.id, &n.parent); err != nil {
						return nil, fmt.Errorf("insert category %q: %w", slug, err)
					}
					bySlug[slug] = n
				}
				id := n.id
				parent, prefix = &id, slug
			}
			if parent != nil {
				out[pathKey(path)] = *parent
			}
		}
	}
	return out, nil
}

func pathKey(path []string) string { return strings.Join(path, "\x00") }

func upsertBooks(ctx context.Context, tx pgx.Tx, recs []catalog.Record) ([]uuid.UUID, error) {
	n := len(recs)
	ids := make([]pgtype.UUID, n)
	isbns, titles, descs, langs := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	prices, ratingCounts, sales := make([]int64, n), make([]*int64, n), make([]int64, n)
	ratings := make([]float64, n)
	published := make([]*time.Time, n)
	publishers, covers := make([]*string, n), make([]*string, n)
	pages := make([]*int32, n)
	for i, r := range recs {
		if r.ID != nil {
			ids[i] = pgtype.UUID{Bytes: *r.ID, Valid: true}
		}
		isbns[i], titles[i], descs[i] = r.ISBN, r.Title, r.Description
		langs[i] = r.Language
		if langs[i] == "" {
			langs[i] = "en"
		}
		prices[i], sales[i], ratings[i] = r.PriceCents, r.SalesCount, r.Rating
		if r.RatingCount > 0 {
			ratingCounts[i] = &r.RatingCount
		}
		if r.PublishedAt != nil {
			t := r.PublishedAt.Time
			published[i] = &t
		}
		publishers[i], covers[i] = nonEmpty(r.Publisher), nonEmpty(r.CoverURL)
		if r.PageCount > 0 {
			pages[i] = &r.PageCount
		}
	}
	// Fields the source did not give (NULL here) keep their stored values on re-import;
	// sales_count belongs to orders once the book exists, so only an insert sets it.
	rows, err := tx.Query(ctx, `
		INSERT INTO books (id, isbn, title, description, price_cents, rating, rating_count, sales_count,
			published_on, release_key, publisher, language, page_count, cover_url)
		SELECT COALESCE(u.id, gen_random_uuid()), u.isbn, u.title, u.description, u.price, u.rating,
			COALESCE(u.rating_count, 0), u.sales, u.published, COALESCE(u.published, DATE '0001-01-01'),
			u.publisher, u.language, u.pages, u.cover
		FROM unnest($1::UUID[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::INT8[], $6::FLOAT8[], $7::INT8[],
			$8::INT8[], $9::DATE[], $10::TEXT[], $11::TEXT[], $12::INT4[], $13::TEXT[])
			AS u (id, isbn, title, description, price, rating, rating_count, sales, published, publisher,
				language, pages, cover)
		ON CONFLICT (isbn) DO UPDATE SET
			title = excluded.title,
			description = excluded.description,
			price_cents = excluded.price_cents,
			rating = excluded.rating,
			rating_count = CASE WHEN excluded.rating_count > 0 THEN excluded.rating_count ELSE books.rating_count END,
			published_on = COALESCE(excluded.published_on, books.published_on),
			release_key = COALESCE(excluded.published_on, books.published_on, DATE '0001-01-01'),
			publisher = COALESCE(excluded.publisher, books.publisher),
			language = excluded.language,
			page_count = COALESCE(excluded.page_count, books.page_count),
			cover_url = COALESCE(excluded.cover_url, books.cover_url),
			updated_at = now()
		RETURNING isbn, id`,
		ids, isbns, titles, descs, prices, ratings, ratingCounts, sales, published, publishers, langs, pages, covers)
	if err != nil {
		return nil, fmt.Errorf("upsert books: %w", err)
	}
	byISBN := make(map[string]uuid.UUID, n)
	for rows.Next() {
		var isbn string
		var id uuid.UUID
		if err := rows.Scan(&isbn, &id); err != nil {
			rows.Close()
			return nil, err
		}
		byISBN[isbn] = id
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("upsert books: %w", err)
	}
	out := make([]uuid.UUID, n)
	for i, r := range recs {
		out[i] = byISBN[r.ISBN]
	}
	return out, nil
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// linkBooks replaces the batch's author and category links and sets stock; reviews are
// inserted once (their ids are stable, so a re-run adds nothing).
func (db *DB) linkBooks(ctx context.Context, tx pgx.Tx, recs []catalog.Record, bookIDs []uuid.UUID, authorIDs, catIDs map[string]uuid.UUID) error {
	var baBook, baAuthor, bcBook, bcCat []uuid.UUID
	var baPos []int32
	var stockIDs, catBooks []uuid.UUID
	var stock []int64
	var rID, rBook []uuid.UUID
	var rRating []int32
	var rTitle, rBody, rName []string
	var rAt []time.Time
	for i, r := range recs {
		seenA := map[uuid.UUID]bool{}
		for pos, a := range r.Authors {
			id := authorIDs[authorKey(a)]
			if seenA[id] {
				continue
			}
			seenA[id] = true
			baBook, baAuthor, baPos = append(baBook, bookIDs[i]), append(baAuthor, id), append(baPos, int32(pos))
		}
		if !r.CategoriesUnknown { // else keep the stored categories
			catBooks = append(catBooks, bookIDs[i])
			seenC := map[uuid.UUID]bool{}
			for _, p := range r.Categories {
				id, ok := catIDs[pathKey(p)]
				if !ok || seenC[id] {
					continue
				}
				seenC[id] = true
				bcBook, bcCat = append(bcBook, bookIDs[i]), append(bcCat, id)
			}
		}
		if !r.StockUnknown {
			stockIDs, stock = append(stockIDs, bookIDs[i]), append(stock, r.Stock)
		}
		for j, rv := range r.Reviews {
			id := rv.ID
			if id == uuid.Nil {
				id = uuid.NewSHA1(bookIDs[i], []byte(fmt.Sprintf("review-%d", j)))
			}
			rID, rBook, rRating = append(rID, id), append(rBook, bookIDs[i]), append(rRating, rv.Rating)
			rTitle, rBody, rName, rAt = append(rTitle, rv.Title), append(rBody, rv.Body), append(rName, rv.ReviewerName), append(rAt, rv.CreatedAt)
		}
	}
	stmts := []struct {
		what string
		sql  string
		args []any
	}{
		{"clear authors", `DELETE FROM book_authors WHERE book_id = ANY($1::UUID[])`, []any{bookIDs}},
		{"link authors", `INSERT INTO book_authors (book_id, author_id, position)
			SELECT * FROM unnest($1::UUID[], $2::UUID[], $3::INT4[])`, []any{baBook, baAuthor, baPos}},
		{"clear categories", `DELETE FROM book_categories WHERE book_id = ANY($1::UUID[])`, []any{catBooks}},
		{"link categories", `INSERT INTO book_categories (book_id, category_id)
			SELECT * FROM unnest($1::UUID[], $2::UUID[])`, []any{bcBook, bcCat}},
		{"insert reviews", `INSERT INTO reviews (id, book_id, rating, title, body, reviewer_name, created_at)
			SELECT * FROM unnest($1::UUID[], $2::UUID[], $3::INT2[], $4::TEXT[], $5::TEXT[], $6::TEXT[], $7::TIMESTAMPTZ[])
			ON CONFLICT (id) DO NOTHING`, []any{rID, rBook, rRating, rTitle, rBody, rName, rAt}},
	}
	for _, s := range stmts {
		if _, err := tx.Exec(ctx, s.sql, s.args...); err != nil {
			return fmt.Errorf("%s: %w", s.what, err)
		}
	}
	return db.importStock(ctx, tx, stockIDs, stock)
}

// importStock applies imported stock counts. A book seen for the first time gets the
// file's count. For a known book the file's count is compared with the count of its
// previous import (inventory.import_stock) and only the difference is applied to the live
// stock: units that checkout took since then stay taken, re-importing the same file
// changes nothing, and a file that says 10 more arrived adds 10. Stock stays within 0 and
// bookstore.MaxStock. A book with stock but no previous import (stock set by an admin, or
// from before imports were tracked) takes the file's count as its baseline and keeps its
// stock: without a baseline, the file cannot say what changed. Each change is written to
// the stock ledger with the reason "import", and one that crosses the low-stock threshold
// raises the alert like any other.
func (db *DB) importStock(ctx context.Context, tx pgx.Tx, ids []uuid.UUID, counts []int64) error {
	if len(ids) == 0 {
		return nil
	}
	type row struct {
		stock int64
		base  *int64
	}
	cur := make(map[uuid.UUID]row, len(ids))
	rows, err := tx.Query(ctx, `
		SELECT book_id, stock, import_stock FROM inventory
		WHERE book_id = ANY($1::UUID[]) ORDER BY book_id FOR UPDATE`, ids)
	if err != nil {
		return fmt.Errorf("read stock: %w", err)
	}
	for rows.Next() {
		var id uuid.UUID
		var r row
		if err := rows.Scan(&id, &r.stock, &r.base); err != nil {
			rows.Close()
			return fmt.Errorf("read stock: %w", err)
		}
		cur[id] = r
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read stock: %w", err)
	}
	next := make([]int64, len(ids))
	var mBook []uuid.UUID
	var mDelta, mStock []int64
	for i, id := range ids {
		r, known := cur[id]
		switch {
		case !known:
			next[i] = counts[i]
		case r.base == nil:
			next[i] = r.stock
		default:
			// Every term is within 0..MaxStock, so the sum cannot overflow.
			next[i] = min(max(r.stock+counts[i]-*r.base, 0), bookstore.MaxStock)
		}
		if d := next[i] - r.stock; d != 0 {
			mBook, mDelta, mStock = append(mBook, id), append(mDelta, d), append(mStock, next[i])
			if err := db.Inventory.lowStockEvent(ctx, tx, id, r.stock, next[i]); err != nil {
				return err
			}
		}
	}
	if _, err := tx.Exec(ctx, `
		INSERT INTO inventory (book_id, stock, import_stock)
		SELECT * FROM unnest($1::UUID[], $2::INT8[], $3::INT8[])
		ON CONFLICT (book_id) DO UPDATE SET stock = excluded.stock, import_stock = excluded.import_stock, updated_at = now()`,
		ids, next, counts); err != nil {
		return fmt.Errorf("set stock: %w", err)
	}
	return recordMovements(ctx, tx, mBook, mDelta, mStock, "import", nil, nil)
}
