// Package meili is the search.Index adapter for Meilisearch, the production engine.
//
// Open creates the index (primary key "id") when it does not exist and applies the
// settings below, waiting for both tasks, so the first search after Open already uses
// them. Writes wait for their tasks too: an Upsert or Delete that returned nil is
// searchable.
//
// Documents (see meiliDoc) carry, besides the book's fields, derived attributes for
// facets: price_bucket (index in search.PriceBuckets), rating_floor (whole stars, so
// "4 and up" is the sum of buckets 4 and 5), and author_keys/category_keys for
// suggestions. Meilisearch's facet search matches the beginning of a whole facet value
// (its first word), so each name is stored once per word it has, starting there:
// "tolkien ␟ J.R.R. Tolkien ␟ <id>", "r r tolkien ␟ ...", and so on; typing "tolk" finds
// the author and brings the display name and id along.
//
// Settings: searchable title, authors, isbn, description (in that order of importance);
// filterable categories, author_ids, price_cents, price_bucket, rating, rating_floor,
// in_stock, language, isbn and the two key attributes; sortable price_cents, rating,
// rating_count, sales_count, published_at, id; ranking rules sort, words, typo,
// proximity, attribute, exactness, sales_count:desc ("sort" first: an explicit sort
// orders all matches, as in the embedded engine); typos from 4 and 8 characters (not on
// the ISBN); pagination.maxTotalHits from Config; facet values sorted by count for
// author_ids.
//
// A search is one request, or one /multi-search request when filters are set: the main
// query plus one facets-only query per filtered facet group with that group's filter
// removed (disjunctive facets, as Meilisearch's faceted-search guide shows). Pages use
// page/hitsPerPage so that Total is exact (up to maxTotalHits).
//
// User input never reaches a filter unescaped: values are quoted by quote (filter.go).
package meili

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/meilisearch/meilisearch-go"
	"golang.org/x/text/unicode/norm"

	"github.com/shopfront/bookstore/catalog"
	"github.com/shopfront/bookstore/search"
	"github.com/shopfront/bookstore/search/internal/words"
)

// Config configures the adapter. URL is required.
type Config struct {
	URL string // http://127.0.0.1:7700
	Key string // API key (sent as a Bearer token); "" for a server without one
	// Index is the index uid (default "books").
	Index string
	// HTTPClient replaces the default client (timeouts, transport).
	HTTPClient *http.Client
	// BatchSize is the number of documents per add request (default 1000).
	BatchSize int
	// MaxTotalHits bounds the results a search can page through and Result.Total
	// (default 20,000).
	MaxTotalHits int
	// PollInterval is how often task status is polled (default 25ms).
	PollInterval time.Duration
}

// Index is the Meilisearch adapter. It implements search.Index.
type Index struct {
	client meilisearch.ServiceManager
	index  meilisearch.IndexManager
	uid    string
	cfg    Config
	tombs  *search.Tombstones // shared with the indexes a Rebuild fills
}

var _ search.Rebuildable = (*Index)(nil)

// Highlight tags asked of Meilisearch: private-use characters, removed from documents
// on the way in, replaced by search.MarkStart/MarkEnd after HTML escaping on the way out.
const (
	preTag  = "\uE000"
	postTag = "\uE001"
)

// keySep separates a name from its id in author_keys and category_keys.
const keySep = " \u241f "

// Open connects to Meilisearch, creates the index if needed and applies the settings.
func Open(ctx context.Context, cfg Config) (*Index, error) {
	if cfg.URL == "" {
		return nil, errors.New("meilisearch: no URL")
	}
	if cfg.Index == "" {
		cfg.Index = "books"
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 1000
	}
	if cfg.MaxTotalHits <= 0 {
		cfg.MaxTotalHits = 20_000
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 25 * time.Millisecond
	}
	opts := []meilisearch.Option{}
	if cfg.Key != "" {
		opts = append(opts, meilisearch.WithAPIKey(cfg.Key))
	}
	if cfg.HTTPClient != nil {
		opts = append(opts, meilisearch.WithCustomClient(cfg.HTTPClient))
	}
	client := meilisearch.New(cfg.URL, opts...)
	ix := &Index{client: client, index: client.Index(cfg.Index), uid: cfg.Index, cfg: cfg, tombs: &search.Tombstones{}}
	if err := ix.create(ctx, cfg.Index, settings(cfg)); err != nil {
		return nil, err
	}
	if err := ix.sweep(ctx); err != nil {
		return nil, err
	}
	return ix, nil
}

// create creates the index uid (primary key "id") unless it exists, and applies st
// when not nil.
func (ix *Index) create(ctx context.Context, uid string, st *meilisearch.Settings) error {
	ti, err := ix.client.CreateIndexWithContext(ctx, &meilisearch.IndexConfig{Uid: uid, PrimaryKey: "id"})
	if err != nil {
		return fmt.Errorf("meilisearch: create index %s: %w", uid, err)
	}
	if err := ix.wait(ctx, ti); err != nil && !isCode(err, "index_already_exists") {
		return fmt.Errorf("meilisearch: create index %s: %w", uid, err)
	}
	if st == nil {
		return nil
	}
	ti, err = ix.client.Index(uid).UpdateSettingsWithContext(ctx, st)
	if err != nil {
		return fmt.Errorf("meilisearch: settings: %w", err)
	}
	if err := ix.wait(ctx, ti); err != nil {
		return fmt.Errorf("meilisearch: settings: %w", err)
	}
	return nil
}

// The index's meta (search.Meta) lives in a companion index, <uid>_meta, holding one
// document: Meilisearch has no place for an index's own metadata, and a companion index
// can be swapped together with its index in one /swap-indexes task.
const metaDocID = "catalog"

type metaDoc struct {
	ID        string    `json:"id"`
	CatalogID string    `json:"catalog_id"`
	Position  time.Time `json:"position"`
}

func (ix *Index) metaUID() string { return ix.uid + "_meta" }

// Meta implements search.Rebuildable.
func (ix *Index) Meta(ctx context.Context) (search.Meta, error) {
	var d metaDoc
	err := ix.client.Index(ix.metaUID()).GetDocumentWithContext(ctx, metaDocID, nil, &d)
	var me *meilisearch.Error
	if errors.As(err, &me) && (me.MeilisearchApiError.Code == "index_not_found" || me.MeilisearchApiError.Code == "document_not_found") {
		return search.Meta{}, nil
	}
	if err != nil {
		return search.Meta{}, fmt.Errorf("meilisearch: read meta: %w", err)
	}
	id, err := uuid.Parse(d.CatalogID)
	if err != nil {
		return search.Meta{}, nil // not ours: as good as none
	}
	return search.Meta{CatalogID: id, Position: d.Position}, nil
}

// SetMeta implements search.Rebuildable.
func (ix *Index) SetMeta(ctx context.Context, m search.Meta) error {
	return ix.writeMeta(ctx, ix.metaUID(), m)
}

func (ix *Index) writeMeta(ctx context.Context, uid string, m search.Meta) error {
	if err := ix.create(ctx, uid, nil); err != nil {
		return err
	}
	pk := "id"
	d := metaDoc{ID: metaDocID, CatalogID: m.CatalogID.String(), Position: m.Position.UTC()}
	ti, err := ix.client.Index(uid).AddDocumentsWithContext(ctx, []metaDoc{d}, &meilisearch.DocumentOptions{PrimaryKey: &pk})
	if err != nil {
		return fmt.Errorf("meilisearch: write meta: %w", err)
	}
	if err := ix.wait(ctx, ti); err != nil {
		return fmt.Errorf("meilisearch: write meta: %w", err)
	}
	return nil
}

// Rebuild implements search.Rebuildable: fill writes into a new index (with the same
// settings), and one /swap-indexes task exchanges it and its meta with the live ones,
// atomically for every server reading the index; the old ones are then deleted.
func (ix *Index) Rebuild(ctx context.Context, m search.Meta, fill func(w search.Writer) error) error {
	if err := ix.sweep(ctx); err != nil {
		return err
	}
	suffix := rebuildInfix + strings.ReplaceAll(uuid.NewString(), "-", "")
	fresh := &Index{client: ix.client, index: ix.client.Index(ix.uid + suffix), uid: ix.uid + suffix, cfg: ix.cfg, tombs: ix.tombs}
	freshMeta := ix.metaUID() + suffix
	drop := func() {
		// Best effort, also when ctx is done: leftovers only cost space.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		for _, uid := range []string{fresh.uid, freshMeta} {
			if ti, err := ix.client.DeleteIndexWithContext(dctx, uid); err == nil {
				ix.wait(dctx, ti)
			}
		}
	}
	if err := ix.create(ctx, fresh.uid, settings(ix.cfg)); err != nil {
		drop()
		return err
	}
	if err := fill(fresh); err != nil {
		drop()
		return err
	}
	if err := ix.writeMeta(ctx, freshMeta, m); err != nil {
		drop()
		return err
	}
	// Both sides of a swap must exist.
	if err := ix.create(ctx, ix.metaUID(), nil); err != nil {
		drop()
		return err
	}
	ti, err := ix.swap(ctx, [][2]string{{ix.uid, fresh.uid}, {ix.metaUID(), freshMeta}})
	if err == nil {
		err = ix.wait(ctx, ti)
	}
	if err != nil {
		drop()
		return fmt.Errorf("meilisearch: swap in the rebuilt index: %w", err)
	}
	drop() // now the old index and meta
	return nil
}

// rebuildInfix names the indexes a Rebuild fills: <uid>_rebuild_<id> and
// <uid>_meta_rebuild_<id>.
const rebuildInfix = "_rebuild_"

// sweep deletes the indexes left by rebuilds that died before their own clean-up (a
// killed process): each is a full copy of the catalog. It runs at Open and before
// every Rebuild; one reindex at a time per index is the supported way (as with the
// embedded engine), so a leftover is never a rebuild still running.
func (ix *Index) sweep(ctx context.Context) error {
	var stale []string
	for offset := int64(0); ; {
		res, err := ix.client.ListIndexesWithContext(ctx, &meilisearch.IndexesQuery{Offset: offset, Limit: 100})
		if err != nil {
			return fmt.Errorf("meilisearch: list indexes: %w", err)
		}
		for _, r := range res.Results {
			if strings.HasPrefix(r.UID, ix.uid+rebuildInfix) || strings.HasPrefix(r.UID, ix.metaUID()+rebuildInfix) {
				stale = append(stale, r.UID)
			}
		}
		offset += int64(len(res.Results))
		if len(res.Results) == 0 || offset >= res.Total {
			break
		}
	}
	for _, uid := range stale {
		ti, err := ix.client.DeleteIndexWithContext(ctx, uid)
		if err == nil {
			err = ix.wait(ctx, ti)
		}
		if err != nil && !isCode(err, "index_not_found") {
			return fmt.Errorf("meilisearch: delete leftover index %s: %w", uid, err)
		}
	}
	return nil
}

// swap exchanges each pair of indexes in one /swap-indexes task. The request is made
// by hand: meilisearch-go's SwapIndexesParams always sends "rename" (no omitempty),
// a field Meilisearch before 1.18 refuses as unknown, and this adapter supports 1.4+.
func (ix *Index) swap(ctx context.Context, pairs [][2]string) (*meilisearch.TaskInfo, error) {
	type swap struct {
		Indexes []string `json:"indexes"`
	}
	body := make([]swap, len(pairs))
	for i, p := range pairs {
		body[i] = swap{Indexes: []string{p[0], p[1]}}
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(ix.cfg.URL, "/")+"/swap-indexes", bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if ix.cfg.Key != "" {
		req.Header.Set("Authorization", "Bearer "+ix.cfg.Key)
	}
	hc := ix.cfg.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		var e struct{ Code, Message string }
		json.Unmarshal(rb, &e)
		if e.Code == "" {
			return nil, fmt.Errorf("status %d: %s", resp.StatusCode, strings.TrimSpace(string(rb)))
		}
		return nil, &taskError{code: e.Code, message: e.Message}
	}
	var ti meilisearch.TaskInfo
	if err := json.Unmarshal(rb, &ti); err != nil {
		return nil, fmt.Errorf("swap response: %w", err)
	}
	return &ti, nil
}

func settings(cfg Config) *meilisearch.Settings {
	return &meilisearch.Settings{
		SearchableAttributes: []string{"title", "authors", "isbn", "description"},
		FilterableAttributes: []string{"id", "categories", "author_ids", "price_cents", "price_bucket", "rating",
			"rating_floor", "in_stock", "language", "isbn", "author_keys", "category_keys"},
		SortableAttributes: []string{"price_cents", "rating", "rating_count", "sales_count", "published_at", "id"},
		RankingRules:       []string{"sort", "words", "typo", "proximity", "attribute", "exactness", "sales_count:desc"},
		TypoTolerance: &meilisearch.TypoTolerance{
			Enabled:             true,
			MinWordSizeForTypos: meilisearch.MinWordSizeForTypos{OneTypo: 4, TwoTypos: 8},
			DisableOnWords:      []string{},
			DisableOnAttributes: []string{"isbn"},
		},
		Pagination: &meilisearch.Pagination{MaxTotalHits: int64(cfg.MaxTotalHits)},
		Faceting: &meilisearch.Faceting{
			MaxValuesPerFacet: 500,
			SortFacetValuesBy: map[string]meilisearch.SortFacetType{
				"*": meilisearch.SortFacetTypeAlpha, "author_ids": meilisearch.SortFacetTypeCount,
				"author_keys": meilisearch.SortFacetTypeCount, "category_keys": meilisearch.SortFacetTypeCount,
			},
		},
	}
}

// taskError is a task that failed.
type taskError struct {
	code, message string
}

func (e *taskError) Error() string { return e.code + ": " + e.message }

func isCode(err error, code string) bool {
	var te *taskError
	return errors.As(err, &te) && te.code == code
}

// wait waits for a task to finish and returns its error if it failed.
func (ix *Index) wait(ctx context.Context, ti *meilisearch.TaskInfo) error {
	t, err := ix.client.WaitForTaskWithContext(ctx, ti.TaskUID, ix.cfg.PollInterval)
	if err != nil {
		return err
	}
	switch t.Status {
	case meilisearch.TaskStatusSucceeded:
		return nil
	case meilisearch.TaskStatusFailed:
		return &taskError{code: t.Error.Code, message: t.Error.Message}
	}
	return fmt.Errorf("task %d %s", t.UID, t.Status)
}

// meiliDoc is the document sent to Meilisearch.
type meiliDoc struct {
	ID            string   `json:"id"`
	ISBN          string   `json:"isbn"`
	Title         string   `json:"title"`
	Authors       []string `json:"authors"`
	AuthorIDs     []string `json:"author_ids"`
	AuthorKeys    []string `json:"author_keys"`
	Description   string   `json:"description"`
	Categories    []string `json:"categories"`
	CategoryNames []string `json:"category_names"`
	CategoryKeys  []string `json:"category_keys"`
	PriceCents    int64    `json:"price_cents"`
	PriceBucket   int      `json:"price_bucket"`
	Rating        float64  `json:"rating"`
	RatingFloor   int      `json:"rating_floor"`
	RatingCount   int64    `json:"rating_count"`
	SalesCount    int64    `json:"sales_count"`
	PublishedAt   *int64   `json:"published_at,omitempty"` // Unix seconds; absent when unknown
	InStock       bool     `json:"in_stock"`
	Language      string   `json:"language"`
	Version       int64    `json:"version"`
}

// clean makes s valid UTF-8 without the highlight tag characters.
func clean(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if strings.ContainsAny(s, preTag+postTag) {
		s = strings.NewReplacer(preTag, "", postTag, "").Replace(s)
	}
	return strings.TrimSpace(s)
}

func toMeili(d *search.Document) meiliDoc {
	m := meiliDoc{
		ID: d.ID.String(), Title: clean(d.Title), Description: clean(d.Description),
		PriceCents: d.PriceCents, PriceBucket: search.PriceBucketOf(d.PriceCents),
		Rating: d.Rating, RatingCount: d.RatingCount, SalesCount: d.SalesCount, InStock: d.InStock,
		Language: strings.ToLower(clean(d.Language)), Version: d.Version,
		Authors: []string{}, AuthorIDs: []string{}, AuthorKeys: []string{},
		Categories: []string{}, CategoryNames: []string{}, CategoryKeys: []string{},
	}
	for i := 0; i < len(d.ISBN); i++ {
		if c := d.ISBN[i]; c >= '0' && c <= '9' || c == 'X' || c == 'x' {
			m.ISBN += strings.ToUpper(string(c))
		}
	}
	if math.IsNaN(m.Rating) || math.IsInf(m.Rating, 0) {
		m.Rating = 0
	}
	m.RatingFloor = int(math.Floor(min(max(m.Rating, 0), 5)))
	if !d.PublishedAt.IsZero() {
		sec := d.PublishedAt.Unix()
		m.PublishedAt = &sec
	}
	for i, a := range d.Authors {
		a = clean(a)
		m.Authors = append(m.Authors, a)
		id := ""
		if i < len(d.AuthorIDs) && d.AuthorIDs[i] != uuid.Nil {
			id = d.AuthorIDs[i].String()
			m.AuthorIDs = append(m.AuthorIDs, id)
		}
		m.AuthorKeys = append(m.AuthorKeys, suggestKeys(a, id)...)
	}
	slugs, names := search.CanonicalCategories(d)
	for i, c := range slugs {
		name := clean(names[i]) // without the highlight markers this adapter reserves
		if name == "" {
			name = c
		}
		m.Categories = append(m.Categories, c)
		m.CategoryNames = append(m.CategoryNames, name)
		m.CategoryKeys = append(m.CategoryKeys, suggestKeys(name, c)...)
	}
	return m
}

// suggestKeys returns the facet values that make name findable by each of its words:
// "<normalised words from that one on> ␟ <name> ␟ <id>".
func suggestKeys(name, id string) []string {
	ws := strings.Fields(words.Normalize(name))
	keys := make([]string, 0, len(ws))
	for i := range ws {
		keys = append(keys, strings.Join(ws[i:], " ")+keySep+name+keySep+id)
	}
	return keys
}

// parseSuggestKey splits a value made by suggestKeys.
func parseSuggestKey(v string) (name, id string, ok bool) {
	parts := strings.Split(v, keySep)
	if len(parts) != 3 {
		return "", "", false
	}
	return parts[1], parts[2], true
}

// Upsert implements search.Index.
func (ix *Index) Upsert(ctx context.Context, docs []search.Document) error {
	for i := range docs {
		if docs[i].ID == uuid.Nil {
			return fmt.Errorf("%w: document %d has no id", search.ErrInvalidDocument, i)
		}
	}
	pk := "id"
	var tasks []*meilisearch.TaskInfo
	for start := 0; start < len(docs); start += ix.cfg.BatchSize {
		chunk := docs[start:min(start+ix.cfg.BatchSize, len(docs))]
		indexed, err := ix.versions(ctx, chunk)
		if err != nil {
			return err
		}
		batch := make([]meiliDoc, 0, len(chunk))
		// Of the documents of a book, the newest wins (the last of equal versions), as
		// in the embedded engine; one older than the indexed one is not sent.
		pos := map[uuid.UUID]int{}
		for i := range chunk {
			d := &chunk[i]
			if older(d.Version, indexed[d.ID.String()]) || ix.tombs.Buries(d.ID, d.Version) {
				continue
			}
			if k, ok := pos[d.ID]; ok {
				if !older(d.Version, batch[k].Version) {
					batch[k] = toMeili(d)
				}
				continue
			}
			pos[d.ID] = len(batch)
			batch = append(batch, toMeili(d))
		}
		if len(batch) == 0 {
			continue
		}
		ti, err := ix.index.AddDocumentsWithContext(ctx, batch, &meilisearch.DocumentOptions{PrimaryKey: &pk})
		if err != nil {
			return fmt.Errorf("meilisearch: add documents: %w", err)
		}
		tasks = append(tasks, ti)
	}
	for _, ti := range tasks {
		if err := ix.wait(ctx, ti); err != nil {
			return fmt.Errorf("meilisearch: add documents: %w", err)
		}
	}
	return nil
}

// older reports whether a document of version v must not replace one of version than:
// an unversioned document (0) always replaces.
func older(v, than int64) bool { return v != 0 && v < than }

// versions returns the indexed versions of the versioned documents of docs (by id). The
// check is not atomic with the write that follows (Meilisearch has no conditional
// writes): it stops a rebuild or a replay that read a book before a newer state was
// indexed, while two writers racing within one round trip remain possible until the
// book's next event.
func (ix *Index) versions(ctx context.Context, docs []search.Document) (map[string]int64, error) {
	var ids []string
	for i := range docs {
		if docs[i].Version != 0 {
			ids = append(ids, quote(docs[i].ID.String()))
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	var res meilisearch.DocumentsResult
	err := ix.index.GetDocumentsWithContext(ctx, &meilisearch.DocumentsQuery{
		Filter: "id IN [" + strings.Join(ids, ", ") + "]", Fields: []string{"id", "version"}, Limit: int64(len(ids)),
	}, &res)
	if err != nil {
		return nil, fmt.Errorf("meilisearch: read indexed versions: %w", err)
	}
	out := make(map[string]int64, len(res.Results))
	for _, h := range res.Results {
		var d struct {
			ID      string `json:"id"`
			Version int64  `json:"version"`
		}
		if err := h.DecodeInto(&d); err != nil {
			return nil, fmt.Errorf("meilisearch: read indexed versions: %w", err)
		}
		out[d.ID] = d.Version
	}
	return out, nil
}

// Delete implements search.Index.
func (ix *Index) Delete(ctx context.Context, ids []uuid.UUID) error {
	if len(ids) == 0 {
		return nil
	}
	var tasks []*meilisearch.TaskInfo
	for start := 0; start < len(ids); start += ix.cfg.BatchSize {
		chunk := ids[start:min(start+ix.cfg.BatchSize, len(ids))]
		// Remember the deleted versions, so a writer that read a book before its delete
		// cannot bring it back (this process only: the tombstones live in memory).
		probe := make([]search.Document, len(chunk))
		for i, id := range chunk {
			probe[i] = search.Document{ID: id, Version: 1}
		}
		indexed, err := ix.versions(ctx, probe)
		if err != nil {
			return err
		}
		for _, id := range chunk {
			ix.tombs.Add(id, indexed[id.String()])
		}
		s := make([]string, len(chunk))
		for i, id := range chunk {
			s[i] = id.String()
		}
		ti, err := ix.index.DeleteDocumentsWithContext(ctx, s, nil)
		if err != nil {
			return fmt.Errorf("meilisearch: delete documents: %w", err)
		}
		tasks = append(tasks, ti)
	}
	for _, ti := range tasks {
		if err := ix.wait(ctx, ti); err != nil {
			return fmt.Errorf("meilisearch: delete documents: %w", err)
		}
	}
	return nil
}

// Count implements search.Index.
func (ix *Index) Count(ctx context.Context) (int, error) {
	st, err := ix.index.GetStatsWithContext(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("meilisearch: stats: %w", err)
	}
	return int(st.NumberOfDocuments), nil
}

// Close implements search.Index; the HTTP client needs no closing.
func (ix *Index) Close() error { return nil }

// DeleteIndex removes the whole index and its meta from the server (for tests and
// resets).
func (ix *Index) DeleteIndex(ctx context.Context) error {
	ti, err := ix.client.DeleteIndexWithContext(ctx, ix.uid)
	if err != nil {
		return err
	}
	if err := ix.wait(ctx, ti); err != nil {
		return err
	}
	if ti, err = ix.client.DeleteIndexWithContext(ctx, ix.metaUID()); err != nil {
		return err
	}
	if err := ix.wait(ctx, ti); err != nil && !isCode(err, "index_not_found") {
		return err
	}
	return nil
}

// sortOf returns the sort parameter of a query; every order ends with best sellers
// first, then ids, like the embedded engine's.
func sortOf(s search.Sort, browsing bool) []string {
	tail := []string{"sales_count:desc", "id:asc"}
	switch s {
	case search.SortPriceAsc:
		return append([]string{"price_cents:asc"}, tail...)
	case search.SortPriceDesc:
		return append([]string{"price_cents:desc"}, tail...)
	case search.SortRating:
		return append([]string{"rating:desc", "rating_count:desc"}, tail...)
	case search.SortNewest:
		return append([]string{"published_at:desc"}, tail...)
	case search.SortBestselling:
		return tail
	}
	if browsing {
		return tail
	}
	return nil // relevance: the ranking rules decide
}

// pageOf returns the page and page size that cover results [offset, offset+limit)
// within one page, and where the wanted results start in it. Meilisearch counts hits
// exactly only with page/hitsPerPage; an offset that is not a multiple of the limit
// takes a larger page.
func pageOf(offset, limit int) (page, size, skip int) {
	for h := limit; h <= offset+limit; h++ {
		if offset/h == (offset+limit-1)/h {
			return offset/h + 1, h, offset % h
		}
	}
	return 1, offset + limit, offset
}

// Search implements search.Index.
func (ix *Index) Search(ctx context.Context, q search.Query) (search.Result, error) {
	q, err := q.Normalized()
	if err != nil {
		return search.Result{}, err
	}
	raw := strings.ToValidUTF8(q.Text, " ")
	text := queryText(raw)
	var isbnFilter string
	if isbn, ok := isISBN(strings.TrimSpace(raw)); ok {
		isbnFilter = "isbn = " + quote(isbn)
		text = ""
	}
	groups := filterGroups(&q.Filter)
	exclude := excludeFilter(q.Exclude)
	if q.Offset >= ix.cfg.MaxTotalHits {
		q.Offset, q.Limit = ix.cfg.MaxTotalHits, 0
	}
	page, size, skip := pageOf(q.Offset, max(q.Limit, 1))
	main := &meilisearch.SearchRequest{
		IndexUID:             ix.uid,
		Query:                text,
		Filter:               joinFilter(groups, -1, isbnFilter, exclude),
		Sort:                 sortOf(q.Sort, text == ""),
		Page:                 int64(page),
		HitsPerPage:          ptr(int64(size)),
		MatchingStrategy:     meilisearch.All,
		AttributesToRetrieve: []string{"id"},
	}
	if q.Limit == 0 {
		main.Page, main.HitsPerPage = 0, ptr(int64(0))
	}
	if text != "" {
		main.AttributesToHighlight = []string{"title", "authors", "description"}
		main.AttributesToCrop = []string{"description"}
		main.CropLength = 30
		main.CropMarker = search.Ellipsis
		main.HighlightPreTag, main.HighlightPostTag = preTag, postTag
		main.AttributesToRetrieve = []string{"id", "title", "authors", "description"}
	}
	// The facets of unfiltered groups come with the main query; each filtered group
	// gets a query without its own filter.
	queries := []*meilisearch.SearchRequest{main}
	var source [numGroups]int // index in queries of each group's facets
	if !q.SkipFacets {
		for g := range numGroups {
			if groups[g] == "" {
				main.Facets = append(main.Facets, facetAttributes[g]...)
				continue
			}
			source[g] = len(queries)
			queries = append(queries, &meilisearch.SearchRequest{
				IndexUID: ix.uid, Query: text, Filter: joinFilter(groups, g, isbnFilter, exclude),
				HitsPerPage: ptr(int64(0)), MatchingStrategy: meilisearch.All,
				Facets: facetAttributes[g],
			})
		}
	}
	var responses []meilisearch.SearchResponse
	if len(queries) == 1 {
		main.IndexUID = ""
		r, err := ix.index.SearchWithContext(ctx, text, main)
		if err != nil {
			return search.Result{}, fmt.Errorf("meilisearch: search: %w", err)
		}
		responses = []meilisearch.SearchResponse{*r}
	} else {
		r, err := ix.client.MultiSearchWithContext(ctx, &meilisearch.MultiSearchRequest{Queries: queries})
		if err != nil {
			return search.Result{}, fmt.Errorf("meilisearch: search: %w", err)
		}
		if len(r.Results) != len(queries) {
			return search.Result{}, fmt.Errorf("meilisearch: multi-search answered %d results for %d queries", len(r.Results), len(queries))
		}
		responses = r.Results
	}

	res := search.Result{Total: int(responses[0].TotalHits)}
	hits := responses[0].Hits
	if skip < len(hits) {
		hits = hits[skip:min(len(hits), skip+q.Limit)]
	} else {
		hits = nil
	}
	for _, h := range hits {
		var id string
		if err := json.Unmarshal(h["id"], &id); err != nil {
			return search.Result{}, fmt.Errorf("meilisearch: hit without id: %w", err)
		}
		u, err := uuid.Parse(id)
		if err != nil {
			continue // not one of ours
		}
		hit := search.Hit{ID: u}
		if text != "" {
			hit.Highlights = highlights(h["_formatted"])
		}
		res.Hits = append(res.Hits, hit)
	}
	if !q.SkipFacets {
		var dists [numGroups]facetDistribution
		var stats [numGroups]map[string]facetStat
		for g := range numGroups {
			r := &responses[source[g]]
			if err := decodeFacets(r, &dists[g], &stats[g]); err != nil {
				return search.Result{}, err
			}
		}
		res.Facets = assembleFacets(&dists, &stats, &q.Filter)
	}
	return res, nil
}

func ptr[T any](v T) *T { return &v }

// queryText is the text sent to Meilisearch: the words of text (as words.Tokenize finds
// them, in compatibility form) joined by spaces, so that nothing of the user's text is
// query syntax (quotes would make a phrase, a leading "-" a negation), and one trailing
// space when text ends with a separator: by the engine contract, and for Meilisearch,
// the last word is then complete, not a prefix. "" when text has no words (browse).
func queryText(text string) string {
	var b strings.Builder
	last := 0
	words.Tokenize(text, func(_ []byte, start, end int) {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(norm.NFKC.String(text[start:end]))
		last = end
	})
	if b.Len() > 0 && last < len(text) {
		b.WriteByte(' ')
	}
	return b.String()
}

// isISBN reports whether text is exactly one ISBN (with or without dashes or spaces) and
// returns it as 13 digits.
func isISBN(text string) (string, bool) {
	isbn, err := catalog.NormalizeISBN(text)
	return isbn, err == nil && text != ""
}

type facetDistribution map[string]map[string]int

type facetStat struct {
	Min float64 `json:"min"`
	Max float64 `json:"max"`
}

func decodeFacets(r *meilisearch.SearchResponse, dist *facetDistribution, stats *map[string]facetStat) error {
	if len(r.FacetDistribution) > 0 && string(r.FacetDistribution) != "null" {
		if err := json.Unmarshal(r.FacetDistribution, dist); err != nil {
			return fmt.Errorf("meilisearch: facetDistribution: %w", err)
		}
	}
	if len(r.FacetStats) > 0 && string(r.FacetStats) != "null" {
		if err := json.Unmarshal(r.FacetStats, stats); err != nil {
			return fmt.Errorf("meilisearch: facetStats: %w", err)
		}
	}
	return nil
}

func assembleFacets(dists *[numGroups]facetDistribution, stats *[numGroups]map[string]facetStat, f *search.Filter) search.Facets {
	var out search.Facets
	counts := func(m map[string]int, selected []string) []search.FacetCount {
		var fc []search.FacetCount
		for v, n := range m {
			if n > 0 {
				fc = append(fc, search.FacetCount{Value: v, Count: n})
			}
		}
		for _, s := range selected {
			if !slices.ContainsFunc(fc, func(c search.FacetCount) bool { return strings.EqualFold(c.Value, s) }) {
				fc = append(fc, search.FacetCount{Value: s})
			}
		}
		sortFacetCounts(fc)
		return fc
	}
	out.Genres = counts(dists[groupGenre]["categories"], f.Categories)

	authors := counts(dists[groupAuthor]["author_ids"], nil)
	authors = authors[:min(len(authors), search.AuthorFacetLimit)]
	for _, id := range f.AuthorIDs {
		s := id.String()
		if !slices.ContainsFunc(authors, func(c search.FacetCount) bool { return c.Value == s }) {
			authors = append(authors, search.FacetCount{Value: s, Count: dists[groupAuthor]["author_ids"][s]})
		}
	}
	sortFacetCounts(authors)
	out.Authors = authors

	var lang []string
	if f.Language != "" {
		lang = []string{f.Language}
	}
	out.Languages = counts(dists[groupLanguage]["language"], lang)

	out.Prices = make([]search.PriceBucket, len(search.PriceBuckets))
	for i, b := range search.PriceBuckets {
		out.Prices[i] = b
		out.Prices[i].Count = dists[groupPrice]["price_bucket"][strconv.Itoa(i)]
	}
	if st, ok := stats[groupPrice]["price_cents"]; ok {
		out.MinPriceCents, out.MaxPriceCents = int64(st.Min), int64(st.Max)
	}

	out.Ratings = make([]search.RatingBucket, len(search.RatingThresholds))
	for i, t := range search.RatingThresholds {
		n := 0
		for floor, c := range dists[groupRating]["rating_floor"] {
			if v, err := strconv.ParseFloat(floor, 64); err == nil && v >= t {
				n += c
			}
		}
		out.Ratings[i] = search.RatingBucket{MinRating: t, Count: n}
	}
	out.InStock = dists[groupStock]["in_stock"]["true"]
	return out
}

func sortFacetCounts(fc []search.FacetCount) {
	slices.SortFunc(fc, func(a, b search.FacetCount) int {
		if a.Count != b.Count {
			return b.Count - a.Count
		}
		return strings.Compare(a.Value, b.Value)
	})
}

// highlights turns a hit's _formatted into Highlights: each field's text HTML-escaped
// with search.MarkStart/MarkEnd around the parts Meilisearch marked. The description is
// kept only when it shows a matching word the title and authors do not.
func highlights(raw json.RawMessage) []search.Highlight {
	if len(raw) == 0 {
		return nil
	}
	var f struct {
		Title       string   `json:"title"`
		Authors     []string `json:"authors"`
		Description string   `json:"description"`
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil
	}
	var out []search.Highlight
	covered := map[string]bool{}
	if s, ok := renderMarks(f.Title, covered); ok {
		out = append(out, search.Highlight{Field: "title", Snippet: s})
	}
	if s, ok := renderMarks(strings.Join(f.Authors, ", "), covered); ok {
		out = append(out, search.Highlight{Field: "authors", Snippet: s})
	}
	marked := map[string]bool{}
	if s, ok := renderMarks(f.Description, marked); ok {
		for t := range marked {
			if !covered[t] {
				out = append(out, search.Highlight{Field: "description", Snippet: s})
				break
			}
		}
	}
	return out
}

// renderMarks escapes s and turns the tag characters into marks, adding the normalised
// marked words to seen; false when nothing is marked.
func renderMarks(s string, seen map[string]bool) (string, bool) {
	if !strings.Contains(s, preTag) {
		return "", false
	}
	var b strings.Builder
	for {
		i := strings.Index(s, preTag)
		if i < 0 {
			b.WriteString(html.EscapeString(strings.ReplaceAll(s, postTag, "")))
			break
		}
		b.WriteString(html.EscapeString(strings.ReplaceAll(s[:i], postTag, "")))
		s = s[i+len(preTag):]
		j := strings.Index(s, postTag)
		if j < 0 {
			j = len(s)
		}
		marked := s[:j]
		b.WriteString(search.MarkStart)
		b.WriteString(html.EscapeString(marked))
		b.WriteString(search.MarkEnd)
		// A mark may cover part of a word (a prefix): count the whole word.
		rest := s[min(j+len(postTag), len(s)):]
		word := marked + leadingWord(rest)
		if n := words.Normalize(word); n != "" {
			seen[n] = true
		}
		s = rest
	}
	return b.String(), true
}

// leadingWord returns the word characters at the start of s.
func leadingWord(s string) string {
	for i, r := range s {
		if r == '\uE000' || r == '\uE001' || words.Normalize(string(r)) == "" && r != '\'' && r != '\u2019' {
			return s[:i]
		}
	}
	return s
}

// Suggest implements search.Index with four concurrent requests: facet searches over
// category_keys and author_keys (each value is "name ␟ id", so the name is matched
// and the id comes along), a search of titles, and one of authors by sales (to rank
// the authors).
func (ix *Index) Suggest(ctx context.Context, prefix string, n int) ([]search.Suggestion, error) {
	n = search.SuggestLimit(n)
	prefix = search.Truncate(prefix)
	prefix = strings.ToValidUTF8(prefix, " ")
	typed := strings.Fields(words.Normalize(prefix))
	if len(typed) == 0 {
		return nil, nil
	}
	open := !strings.HasSuffix(prefix, " ") && words.Normalize(lastRune(prefix)) != ""
	var (
		wg                     sync.WaitGroup
		cats, authors, titles  []ranked
		sales                  map[string]int64
		errC, errA, errT, errS error
	)
	wg.Add(3)
	go func() { defer wg.Done(); cats, errC = ix.facetSuggest(ctx, "category_keys", prefix, typed, open) }()
	go func() {
		defer wg.Done()
		if authors, errA = ix.facetSuggest(ctx, "author_keys", prefix, typed, open); errA == nil {
			sales, errS = ix.authorSales(ctx, authors)
		}
	}()
	go func() { defer wg.Done(); titles, errT = ix.titleSuggest(ctx, prefix, typed, open, 2*n) }()
	wg.Wait()
	if err := errors.Join(errC, errA, errT, errS); err != nil {
		return nil, fmt.Errorf("meilisearch: suggest: %w", err)
	}
	// Authors rank by the sales of their books (as in the embedded engine), not by
	// how many they wrote.
	for i := range authors {
		authors[i].pop = sales[authors[i].id]
	}
	toList := func(kind search.SuggestionKind, rs []ranked) []search.Suggestion {
		slices.SortStableFunc(rs, func(a, b ranked) int {
			if a.start != b.start {
				if a.start {
					return -1
				}
				return 1
			}
			if a.pop != b.pop {
				if a.pop > b.pop {
					return -1
				}
				return 1
			}
			return strings.Compare(a.text, b.text)
		})
		out := make([]search.Suggestion, 0, len(rs))
		for _, r := range rs {
			out = append(out, search.Suggestion{Kind: kind, Text: r.text, ID: r.id})
		}
		return out
	}
	return search.MergeSuggestions(toList(search.SuggestCategory, cats), toList(search.SuggestAuthor, authors),
		toList(search.SuggestTitle, titles), n), nil
}

func lastRune(s string) string {
	r, _ := utf8.DecodeLastRuneInString(s)
	return string(r)
}

type ranked struct {
	text, id string
	start    bool  // the typed words start the text
	pop      int64 // books (categories) or sales (authors, titles)
}

// matchWords reports whether the typed words occur in text consecutively (the last as
// a prefix when open) and whether at its start.
func matchWords(text string, typed []string, open bool) (ok, start bool) {
	ws := strings.Fields(words.Normalize(text))
	for s := 0; s+len(typed) <= len(ws); s++ {
		match := true
		for k, t := range typed {
			w := ws[s+k]
			if w != t && !(open && k == len(typed)-1 && strings.HasPrefix(w, t)) {
				match = false
				break
			}
		}
		if match {
			return true, s == 0
		}
	}
	return false, false
}

func (ix *Index) facetSuggest(ctx context.Context, facet, prefix string, typed []string, open bool) ([]ranked, error) {
	query := strings.Join(typed, " ")
	if !open {
		query += " " // a complete last word: match it whole
	}
	raw, err := ix.index.FacetSearchWithContext(ctx, &meilisearch.FacetSearchRequest{
		FacetName: facet, FacetQuery: query,
	})
	if err != nil {
		return nil, err
	}
	var resp struct {
		FacetHits []struct {
			Value string `json:"value"`
			Count int64  `json:"count"`
		} `json:"facetHits"`
	}
	if err := json.Unmarshal(*raw, &resp); err != nil {
		return nil, err
	}
	var out []ranked
	seen := map[string]bool{}
	for _, h := range resp.FacetHits {
		name, id, ok := parseSuggestKey(h.Value)
		if !ok || h.Count == 0 || seen[name+keySep+id] {
			continue
		}
		// Meilisearch tolerates typos in facet searches; suggestions complete what is
		// typed, with the same rule as the embedded engine.
		ok, start := matchWords(name, typed, open)
		if !ok {
			continue
		}
		seen[name+keySep+id] = true
		out = append(out, ranked{text: name, id: id, start: start, pop: h.Count})
	}
	return out, nil
}

// authorSalesHits bounds the best-selling books whose authors' sales authorSales sums.
const authorSalesHits = 1000

// authorSales returns the sales of the best-selling books of the given authors (those
// the facet search matched), summed per author id. The books are chosen by the exact
// author ids, not by a text search, so books of authors one typo away cannot fill the
// window and leave a matching author at 0. Facet search counts books only; an author
// without a book in the window gets 0 and comes after those with one.
func (ix *Index) authorSales(ctx context.Context, authors []ranked) (map[string]int64, error) {
	if len(authors) == 0 {
		return nil, nil
	}
	ids := make([]string, 0, len(authors))
	want := map[string]bool{}
	for _, a := range authors {
		if !want[a.id] {
			want[a.id] = true
			ids = append(ids, quote(a.id))
		}
	}
	r, err := ix.index.SearchWithContext(ctx, "", &meilisearch.SearchRequest{
		Limit:                authorSalesHits,
		Filter:               "author_ids IN [" + strings.Join(ids, ", ") + "]",
		AttributesToRetrieve: []string{"author_ids", "sales_count"},
		Sort:                 []string{"sales_count:desc"},
	})
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, h := range r.Hits {
		var d struct {
			AuthorIDs  []string `json:"author_ids"`
			SalesCount int64    `json:"sales_count"`
		}
		if err := h.DecodeInto(&d); err != nil {
			continue
		}
		for _, id := range d.AuthorIDs {
			if want[id] {
				out[id] += d.SalesCount + 1 // +1: a book sold, or not, counts
			}
		}
	}
	return out, nil
}

func (ix *Index) titleSuggest(ctx context.Context, prefix string, typed []string, open bool, limit int) ([]ranked, error) {
	// SearchWithContext sets Query from its second argument.
	r, err := ix.index.SearchWithContext(ctx, queryText(prefix), &meilisearch.SearchRequest{
		Limit:                int64(limit),
		AttributesToSearchOn: []string{"title"},
		AttributesToRetrieve: []string{"id", "title", "sales_count"},
		MatchingStrategy:     meilisearch.All,
		Sort:                 []string{"sales_count:desc"},
	})
	if err != nil {
		return nil, err
	}
	var out []ranked
	for _, h := range r.Hits {
		var d struct {
			ID         string `json:"id"`
			Title      string `json:"title"`
			SalesCount int64  `json:"sales_count"`
		}
		if err := h.DecodeInto(&d); err != nil {
			continue
		}
		ok, start := matchWords(d.Title, typed, open)
		if !ok {
			continue // a typo match: suggestions complete what is typed
		}
		out = append(out, ranked{text: d.Title, id: d.ID, start: start, pop: d.SalesCount})
	}
	return out, nil
}
