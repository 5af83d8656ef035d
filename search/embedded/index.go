// Package embedded is the zero-setup search engine: a search.Index kept in a directory
// on local disk, with no server to run.
//
// Bleve v2 (scorch segments on disk, never the legacy in-memory index) stores the
// documents and their inverted index; everything else is in memory, rebuilt by Open
// from the stored documents:
//
//   - Text matching reads Bleve's postings (TermFieldReader) for each query word and its
//     expansions, intersects the words rarest first (seeking in the postings of the
//     common ones) and scores with BM25 per field, boosted (title 3, authors 2.5,
//     description 1), taking each word's best field. Expansions come from an in-memory
//     vocabulary of every indexed term: completions of the last word (for a text of
//     several words they are checked against the titles and author names in memory, so
//     no completion is missed), and typos found by a banded edit-distance walk over the
//     sorted terms that shares rows between terms with a common prefix and skips whole
//     subtrees (Bleve's own fuzzy lookup builds a Levenshtein DFA per word: 40 µs for
//     one typo, 250-500 µs for two, before walking every segment of every field).
//   - Every book has a dense ordinal. Filters and facet counts use roaring bitmaps per
//     facet value (category, author, language, price bucket, rating threshold, stock),
//     intersected with the match set; each facet group is counted over the matches
//     filtered by the other groups (disjunctive facets), small sets by one pass over
//     their books instead. Price and rating ranges are unions of precomputed bands of
//     the price and rating orders.
//   - Browse sorts walk precomputed orders (or sort the ranks of a small set); text
//     results are ranked by score with a small boost for sales.
//   - Suggestions come from a word index of titles, author names and category names.
//   - Identical searches and suggestions are answered from a small cache cleared by
//     every write.
//   - After bulk writes, Bleve's segments are merged into one in the background.
//
// One directory holds one index and must not be opened by two processes. Writes are
// durable when Upsert or Delete returns (Bleve persists each batch before answering),
// and visible to the next search.
package embedded

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/index/scorch"
	"github.com/blevesearch/bleve/v2/index/scorch/mergeplan"
	"github.com/blevesearch/bleve/v2/mapping"
	index "github.com/blevesearch/bleve_index_api"
	"github.com/google/uuid"

	"github.com/shopfront/bookstore/search"
)

// schemaVersion names the layout of the Bleve index (mapping, analyzer, stored fields).
// Open discards an index written with another version.
const schemaVersion = "bookstore-search/1/" + analyzerName

var (
	schemaKey = []byte("bookstore_schema")
	metaKey   = []byte("bookstore_meta")
)

// The text fields, in the order of docInfo.lens and of field masks.
const (
	fieldTitle = iota
	fieldAuthors
	fieldDescription
	numTextFields
)

var textFieldNames = [numTextFields]string{"title", "authors", "description"}

const (
	fieldISBN = "isbn"
	fieldMeta = "meta"
)

// writeBatchSize is the number of documents per Bleve batch.
const writeBatchSize = 2000

// Options tune an Index; the zero value is the default.
type Options struct {
	// CacheSize is the number of results kept for repeated identical searches (default
	// 2048; negative disables the cache).
	CacheSize int
}

// Index is the embedded engine. It implements search.Index.
type Index struct {
	dir   string
	bleve bleve.Index
	raw   index.Index // Bleve's scorch index, for readers on its snapshots

	wmu   sync.Mutex        // serialises writers
	tombs search.Tombstones // versions of recent deletes (see newest)
	mu    sync.RWMutex      // guards st; searches hold it for reading
	st    *state

	derivedMu sync.Mutex // serialises the lazy builds of sort orders and vocabularies
	sorts     atomic.Pointer[sortOrders]
	suggest   atomic.Pointer[suggestIndex]
	vocab     atomic.Pointer[vocabulary]
	ordc      atomic.Pointer[ordCache]

	cache  *lru
	closed atomic.Bool

	// Background merging of Bleve's segments into one after bulk writes (fewer
	// segments, fewer dictionary lookups per query term).
	optMu      sync.Mutex
	optTimer   *time.Timer
	optPending int        // documents written since the last merge
	mergeMu    sync.Mutex // one merge at a time: Bleve refuses a second ForceMerge
	bgCtx      context.Context
	bgCancel   context.CancelFunc
	bg         sync.WaitGroup
}

// Segments are merged into one after a quiet period following at least optimizeAfter
// written documents.
const (
	optimizeAfter = 1000
	optimizeQuiet = time.Second
)

var _ search.Index = (*Index)(nil)

// Open opens the index in dir, creating dir and an empty index when there is none, and
// loads its documents into memory. An index written by an incompatible version of this
// package is discarded and recreated empty: Count then reports 0 and the caller should
// reindex.
func Open(dir string, opts ...Options) (*Index, error) {
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	if dir == "" {
		return nil, errors.New("embedded search: empty directory name")
	}
	b, err := openBleve(dir)
	if err != nil {
		return nil, err
	}
	raw, err := b.Advanced()
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("embedded search: %w", err)
	}
	size := o.CacheSize
	if size == 0 {
		size = 2048
	}
	ix := &Index{dir: dir, bleve: b, raw: raw, st: newState(), cache: newLRU(size)}
	ix.bgCtx, ix.bgCancel = context.WithCancel(context.Background())
	if err := ix.load(); err != nil {
		b.Close()
		return nil, err
	}
	return ix, nil
}

func openBleve(dir string) (bleve.Index, error) {
	if _, err := os.Stat(filepath.Join(dir, "index_meta.json")); err == nil {
		b, err := bleve.Open(dir)
		if err != nil {
			return nil, fmt.Errorf("embedded search: open %s: %w", dir, err)
		}
		v, err := b.GetInternal(schemaKey)
		if err == nil && string(v) == schemaVersion {
			return b, nil
		}
		b.Close()
		// Another layout: start over (the caller reindexes when Count is 0).
		if err := removeIndex(dir); err != nil {
			return nil, err
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("embedded search: %w", err)
	}
	switch entries, err := os.ReadDir(dir); {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(filepath.Dir(filepath.Clean(dir)), 0o755); err != nil {
			return nil, fmt.Errorf("embedded search: %w", err)
		}
	case err != nil:
		return nil, fmt.Errorf("embedded search: %w", err)
	case len(entries) > 0:
		return nil, fmt.Errorf("embedded search: %s is neither an index nor empty", dir)
	default:
		os.Remove(dir) // bleve.New wants to create it
	}
	b, err := bleve.New(dir, newMapping())
	if err != nil {
		return nil, fmt.Errorf("embedded search: create %s: %w", dir, err)
	}
	if err := b.SetInternal(schemaKey, []byte(schemaVersion)); err != nil {
		b.Close()
		return nil, fmt.Errorf("embedded search: %w", err)
	}
	return b, nil
}

// removeIndex deletes what Bleve keeps in dir (index_meta.json and store/), and
// nothing else.
func removeIndex(dir string) error {
	if err := os.RemoveAll(filepath.Join(dir, "store")); err != nil {
		return fmt.Errorf("embedded search: discard old index: %w", err)
	}
	if err := os.Remove(filepath.Join(dir, "index_meta.json")); err != nil {
		return fmt.Errorf("embedded search: discard old index: %w", err)
	}
	return nil
}

func newMapping() mapping.IndexMapping {
	m := bleve.NewIndexMapping()
	m.DefaultAnalyzer = analyzerName
	m.IndexDynamic, m.StoreDynamic, m.DocValuesDynamic = false, false, false
	doc := bleve.NewDocumentStaticMapping()
	for _, name := range textFieldNames {
		f := bleve.NewTextFieldMapping()
		f.Analyzer = analyzerName
		f.Store = name == "description" // for snippets
		f.IncludeInAll, f.IncludeTermVectors, f.DocValues = false, false, false
		doc.AddFieldMappingsAt(name, f)
	}
	isbn := bleve.NewKeywordFieldMapping()
	isbn.Store, isbn.IncludeInAll, isbn.IncludeTermVectors, isbn.DocValues = false, false, false, false
	doc.AddFieldMappingsAt(fieldISBN, isbn)
	meta := bleve.NewTextFieldMapping()
	meta.Analyzer = "keyword"
	meta.Index, meta.Store = false, true
	meta.IncludeInAll, meta.IncludeTermVectors, meta.DocValues = false, false, false
	doc.AddFieldMappingsAt(fieldMeta, meta)
	m.DefaultMapping = doc
	return m
}

// storedDoc is the "meta" stored field: everything of a Document but its description,
// which has its own stored field.
type storedDoc struct {
	ID            uuid.UUID   `json:"id"`
	ISBN          string      `json:"isbn,omitempty"`
	Title         string      `json:"title,omitempty"`
	Authors       []string    `json:"authors,omitempty"`
	AuthorIDs     []uuid.UUID `json:"author_ids,omitempty"`
	Categories    []string    `json:"categories,omitempty"`
	CategoryNames []string    `json:"category_names,omitempty"`
	PriceCents    int64       `json:"price,omitempty"`
	Rating        float64     `json:"rating,omitempty"`
	RatingCount   int64       `json:"rating_count,omitempty"`
	SalesCount    int64       `json:"sales,omitempty"`
	PublishedAt   int64       `json:"published,omitempty"` // Unix seconds; absent when unknown
	InStock       bool        `json:"in_stock,omitempty"`
	Language      string      `json:"lang,omitempty"`
	Version       int64       `json:"v,omitempty"`
}

// load rebuilds the in-memory state from the stored documents, reading each segment's
// live documents in order.
func (ix *Index) load() error {
	r, err := ix.raw.Reader()
	if err != nil {
		return fmt.Errorf("embedded search: %w", err)
	}
	defer r.Close()
	segs, ok := r.(interface {
		Segments() []*scorch.SegmentSnapshot
	})
	if !ok {
		return fmt.Errorf("embedded search: unexpected index reader %T", r)
	}
	st := ix.st
	for _, seg := range segs.Segments() {
		it := seg.DocNumbersLive().Iterator()
		for it.HasNext() {
			var meta, desc []byte
			err := seg.VisitDocument(uint64(it.Next()), func(field string, _ byte, value []byte, _ []uint64) bool {
				// value is only valid during the call.
				switch field {
				case fieldMeta:
					meta = append(meta[:0], value...)
				case "description":
					desc = append(desc[:0], value...)
				}
				return true
			})
			if err != nil {
				return fmt.Errorf("embedded search: load: %w", err)
			}
			var sd storedDoc
			if err := json.Unmarshal(meta, &sd); err != nil {
				return fmt.Errorf("embedded search: load a stored document: %w", err)
			}
			st.apply(&sd, string(desc))
		}
	}
	st.version++
	return nil
}

// Upsert implements search.Index.
func (ix *Index) Upsert(ctx context.Context, docs []search.Document) error {
	for i := range docs {
		if docs[i].ID == uuid.Nil {
			return fmt.Errorf("%w: document %d has no id", search.ErrInvalidDocument, i)
		}
	}
	ix.wmu.Lock()
	defer ix.wmu.Unlock()
	docs = ix.newest(docs)
	for start := 0; start < len(docs); start += writeBatchSize {
		if err := ctx.Err(); err != nil {
			return err
		}
		if ix.closed.Load() {
			return search.ErrClosed
		}
		chunk := docs[start:min(start+writeBatchSize, len(docs))]
		b := ix.bleve.NewBatch()
		stored := make([]storedDoc, len(chunk))
		descs := make([]string, len(chunk))
		for i := range chunk {
			d := sanitize(&chunk[i])
			descs[i] = d.Description
			stored[i] = toStored(&d)
			meta, err := json.Marshal(&stored[i])
			if err != nil {
				return fmt.Errorf("embedded search: %w", err)
			}
			err = b.Index(d.ID.String(), map[string]any{
				"title": d.Title, "authors": d.Authors, "description": d.Description,
				fieldISBN: d.ISBN, fieldMeta: string(meta),
			})
			if err != nil {
				return fmt.Errorf("embedded search: index %s: %w", d.ID, err)
			}
		}
		if err := ix.bleve.Batch(b); err != nil {
			return fmt.Errorf("embedded search: write: %w", err)
		}
		ix.mu.Lock()
		for i := range stored {
			ix.st.apply(&stored[i], descs[i])
		}
		ix.st.compactTerms()
		ix.st.version++
		ix.cache.clear()
		ix.mu.Unlock()
		ix.wrote(len(chunk))
	}
	return nil
}

// newest drops the documents that an Upsert must not write: those older (by Version)
// than the indexed state of their book, or than another document of the same book in
// docs (of equal versions the last wins). Callers hold wmu.
func (ix *Index) newest(docs []search.Document) []search.Document {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	best := make(map[uuid.UUID]int, len(docs))
	for i := range docs {
		d := &docs[i]
		if j, ok := best[d.ID]; ok && older(d.Version, docs[j].Version) {
			continue
		}
		if ord, ok := ix.st.byID[d.ID]; ok && older(d.Version, ix.st.docs[ord].version) {
			continue
		}
		if ix.tombs.Buries(d.ID, d.Version) {
			continue // read before its delete
		}
		best[d.ID] = i
	}
	if len(best) == len(docs) {
		return docs
	}
	out := make([]search.Document, 0, len(best))
	for i := range docs {
		if j, ok := best[docs[i].ID]; ok && j == i {
			out = append(out, docs[i])
		}
	}
	return out
}

// older reports whether a document of version v must not replace one of version than:
// an unversioned document (0) always replaces.
func older(v, than int64) bool { return v != 0 && v < than }

// Meta implements search.Rebuildable.
func (ix *Index) Meta(ctx context.Context) (search.Meta, error) {
	if ix.closed.Load() {
		return search.Meta{}, search.ErrClosed
	}
	v, err := ix.bleve.GetInternal(metaKey)
	if err != nil || len(v) == 0 {
		return search.Meta{}, err
	}
	var m storedMeta
	if err := json.Unmarshal(v, &m); err != nil {
		return search.Meta{}, fmt.Errorf("embedded search: read meta: %w", err)
	}
	return search.Meta{CatalogID: m.CatalogID, Position: m.Position}, nil
}

// SetMeta implements search.Rebuildable.
func (ix *Index) SetMeta(ctx context.Context, m search.Meta) error {
	ix.wmu.Lock()
	defer ix.wmu.Unlock()
	if ix.closed.Load() {
		return search.ErrClosed
	}
	v, err := json.Marshal(storedMeta{CatalogID: m.CatalogID, Position: m.Position})
	if err != nil {
		return err
	}
	if err := ix.bleve.SetInternal(metaKey, v); err != nil {
		return fmt.Errorf("embedded search: write meta: %w", err)
	}
	return nil
}

type storedMeta struct {
	CatalogID uuid.UUID `json:"catalog_id"`
	Position  time.Time `json:"position"`
}

// Delete implements search.Index.
func (ix *Index) Delete(ctx context.Context, ids []uuid.UUID) error {
	ix.wmu.Lock()
	defer ix.wmu.Unlock()
	for start := 0; start < len(ids); start += writeBatchSize {
		if err := ctx.Err(); err != nil {
			return err
		}
		if ix.closed.Load() {
			return search.ErrClosed
		}
		chunk := ids[start:min(start+writeBatchSize, len(ids))]
		b := ix.bleve.NewBatch()
		for _, id := range chunk {
			b.Delete(id.String())
		}
		if err := ix.bleve.Batch(b); err != nil {
			return fmt.Errorf("embedded search: delete: %w", err)
		}
		ix.mu.Lock()
		for _, id := range chunk {
			if ord, ok := ix.st.byID[id]; ok {
				ix.tombs.Add(id, ix.st.docs[ord].version)
			}
			ix.st.remove(id)
		}
		ix.st.compactTerms()
		ix.st.version++
		ix.cache.clear()
		ix.mu.Unlock()
		ix.wrote(len(chunk))
	}
	return nil
}

// wrote notes n written documents and schedules a merge of the segments once writes
// pause.
func (ix *Index) wrote(n int) {
	ix.optMu.Lock()
	defer ix.optMu.Unlock()
	ix.optPending += n
	if ix.optPending < optimizeAfter {
		return
	}
	if ix.optTimer != nil {
		ix.optTimer.Reset(optimizeQuiet)
		return
	}
	ix.optTimer = time.AfterFunc(optimizeQuiet, func() {
		ix.optMu.Lock()
		ix.optTimer, ix.optPending = nil, 0
		if ix.closed.Load() { // Close holds optMu after setting closed, then waits for bg
			ix.optMu.Unlock()
			return
		}
		ix.bg.Add(1)
		ix.optMu.Unlock()
		defer ix.bg.Done()
		ix.Optimize(ix.bgCtx) // best effort: Bleve keeps merging on its own anyway
	})
}

// Optimize merges the index's segments into one, which makes text queries cheaper;
// the engine does it by itself after bulk writes. Searches and writes may run meanwhile.
func (ix *Index) Optimize(ctx context.Context) error {
	s, ok := ix.raw.(*scorch.Scorch)
	if !ok || ix.closed.Load() {
		return nil
	}
	// A caller's merge waits for the background one instead of failing with "force
	// merge already in progress".
	ix.mergeMu.Lock()
	defer ix.mergeMu.Unlock()
	return s.ForceMerge(ctx, &mergeplan.SingleSegmentMergePlanOptions)
}

// Count implements search.Index.
func (ix *Index) Count(ctx context.Context) (int, error) {
	if ix.closed.Load() {
		return 0, search.ErrClosed
	}
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return len(ix.st.byID), nil
}

// Close implements search.Index. It waits for searches in progress.
func (ix *Index) Close() error {
	ix.wmu.Lock()
	defer ix.wmu.Unlock()
	if ix.closed.Swap(true) {
		return nil
	}
	ix.optMu.Lock()
	if ix.optTimer != nil {
		ix.optTimer.Stop()
	}
	ix.optMu.Unlock()
	ix.bgCancel()
	ix.bg.Wait()
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return ix.bleve.Close()
}

// DiskSize returns the bytes the index takes in its directory.
func (ix *Index) DiskSize() (int64, error) {
	var n int64
	err := filepath.WalkDir(ix.dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			n += info.Size()
		}
		return nil
	})
	return n, err
}

// sanitize returns d with strings made valid UTF-8 and trimmed, the ISBN stripped to its
// digits, and a canonical language and category slugs.
func sanitize(d *search.Document) search.Document {
	out := *d
	clean := func(s string) string { return strings.TrimSpace(strings.ToValidUTF8(s, "\uFFFD")) }
	out.Title = clean(d.Title)
	out.Description = clean(d.Description)
	out.Language = strings.ToLower(clean(d.Language))
	var isbn []byte
	for i := 0; i < len(d.ISBN); i++ {
		if c := d.ISBN[i]; c >= '0' && c <= '9' || c == 'X' || c == 'x' {
			isbn = append(isbn, c)
		}
	}
	out.ISBN = strings.ToUpper(string(isbn))
	out.Authors = make([]string, 0, len(d.Authors))
	for _, a := range d.Authors {
		out.Authors = append(out.Authors, clean(a))
	}
	out.AuthorIDs = d.AuthorIDs[:min(len(d.AuthorIDs), len(d.Authors))]
	out.Categories, out.CategoryNames = search.CanonicalCategories(d)
	if math.IsNaN(out.Rating) || math.IsInf(out.Rating, 0) {
		out.Rating = 0
	}
	return out
}

func toStored(d *search.Document) storedDoc {
	sd := storedDoc{
		ID: d.ID, ISBN: d.ISBN, Title: d.Title, Authors: d.Authors, AuthorIDs: d.AuthorIDs,
		Categories: d.Categories, CategoryNames: d.CategoryNames, PriceCents: d.PriceCents,
		Rating: d.Rating, RatingCount: d.RatingCount, SalesCount: d.SalesCount,
		InStock: d.InStock, Language: d.Language, Version: d.Version,
	}
	if !d.PublishedAt.IsZero() {
		sd.PublishedAt = d.PublishedAt.Unix()
		if sd.PublishedAt == 0 {
			sd.PublishedAt = 1 // 1970-01-01 is a date, not "unknown"
		}
	}
	return sd
}

// ---------------------------------------------------------------------------------------
// In-memory state.

// noDate sorts books without a publication date after all others.
const noDate = math.MinInt64

// docInfo is what the engine keeps in memory of one document, at its ordinal.
type docInfo struct {
	id          uuid.UUID
	live        bool
	inStock     bool
	lens        [numTextFields]int32
	title       string
	isbn        string
	lang        string
	authors     []string
	titleTerms  []string // the words of the title and of the authors, normalised
	authorTerms []string
	terms       []uint32 // the document's terms: id<<numTextFields | the fields having it
	authorIdx   []int32  // into state.authors
	catIdx      []int32  // into state.cats
	langIdx     int32    // into state.langs
	priceBucket uint8    // index in search.PriceBuckets
	price       int64
	rating      float64
	ratingCount int64
	sales       int64
	published   int64 // Unix seconds or noDate
	version     int64 // search.Document.Version
}

// termInfo counts the live documents having a term.
type termInfo struct {
	docs  int32                // in any text field
	field [numTextFields]int32 // in each text field
}

// facetValue is one value of a facet with many values: a category or an author.
type facetValue struct {
	key  string // category slug, author id, or "name:"+normalised name for authors without id
	name string // display name
	bm   *roaring.Bitmap
	// sales of the value's books: the popularity that ranks author suggestions (a
	// classic author of one bestseller before a prolific one nobody buys).
	sales int64
}

type state struct {
	docs    []docInfo
	byID    map[uuid.UUID]uint32
	free    []uint32 // ordinals of deleted documents, for reuse
	live    *roaring.Bitmap
	inStock *roaring.Bitmap
	prices  []*roaring.Bitmap // per search.PriceBuckets
	ratings []*roaring.Bitmap // per search.RatingThresholds: rating >= threshold
	langs   []*facetValue
	langBy  map[string]int32

	cats     []*facetValue
	catByKey map[string]int32
	authors  []*facetValue
	authByID map[string]int32

	lenSum [numTextFields]int64
	sg     *suggester

	// The terms of the text fields, by id, with the live documents having them (a
	// document's terms are counted once however often it is written, and no more once
	// deleted). termsAdded changes when a term gets an id (or ids change): the sorted
	// vocabulary is rebuilt then. Ids of terms no document has any more are reclaimed
	// by compactTerms.
	termID     map[string]int32
	termStr    []string
	termStat   []termInfo
	deadTerms  int // ids whose count is 0
	termsAdded uint64

	version uint64 // changes with every write
}

func newState() *state {
	st := &state{
		byID: map[uuid.UUID]uint32{}, live: roaring.New(), inStock: roaring.New(),
		langBy: map[string]int32{}, catByKey: map[string]int32{}, authByID: map[string]int32{},
		sg: newSuggester(), termID: map[string]int32{},
	}
	for range search.PriceBuckets {
		st.prices = append(st.prices, roaring.New())
	}
	for range search.RatingThresholds {
		st.ratings = append(st.ratings, roaring.New())
	}
	return st
}

// apply adds or replaces a document.
func (st *state) apply(sd *storedDoc, description string) {
	ord, ok := st.byID[sd.ID]
	if ok {
		st.unindex(ord)
		st.uncount(ord)
	} else if n := len(st.free); n > 0 {
		ord = st.free[n-1]
		st.free = st.free[:n-1]
	} else {
		ord = uint32(len(st.docs))
		st.docs = append(st.docs, docInfo{})
	}
	st.byID[sd.ID] = ord
	d := docInfo{
		id: sd.ID, live: true, inStock: sd.InStock, title: sd.Title, isbn: sd.ISBN,
		lang: sd.Language, authors: sd.Authors, price: sd.PriceCents, rating: sd.Rating,
		ratingCount: sd.RatingCount, sales: sd.SalesCount, published: sd.PublishedAt,
		version: sd.Version,
	}
	if d.published == 0 {
		d.published = noDate
	}
	d.priceBucket = uint8(search.PriceBucketOf(d.price))
	d.langIdx = st.facet(&st.langs, st.langBy, d.lang, d.lang)
	for i, name := range sd.Authors {
		key := "name:" + normalizeText(name)
		if i < len(sd.AuthorIDs) && sd.AuthorIDs[i] != uuid.Nil {
			key = sd.AuthorIDs[i].String()
		}
		a := st.facet(&st.authors, st.authByID, key, name)
		d.authorIdx = append(d.authorIdx, a)
		if strings.HasPrefix(key, "name:") {
			key = ""
		}
		st.sg.set(search.SuggestAuthor, a, name, key)
	}
	for i, slug := range sd.Categories {
		name := slug
		if i < len(sd.CategoryNames) {
			name = sd.CategoryNames[i]
		}
		c := st.facet(&st.cats, st.catByKey, slug, name)
		d.catIdx = append(d.catIdx, c)
		st.sg.set(search.SuggestCategory, c, name, slug)
	}
	seen := map[string]uint8{} // fields per term of this document
	count := func(f int, text string) {
		tokenize(text, func(term []byte, _, _ int) {
			d.lens[f]++
			seen[string(term)] |= 1 << f
			switch f {
			case fieldTitle:
				d.titleTerms = append(d.titleTerms, string(term))
			case fieldAuthors:
				d.authorTerms = append(d.authorTerms, string(term))
			}
		})
	}
	count(fieldTitle, sd.Title)
	for _, a := range sd.Authors {
		count(fieldAuthors, a)
	}
	count(fieldDescription, description)
	d.terms = make([]uint32, 0, len(seen))
	for t, fields := range seen {
		id, ok := st.termID[t]
		if !ok {
			id = int32(len(st.termStr))
			st.termID[t] = id
			st.termStr = append(st.termStr, t)
			st.termStat = append(st.termStat, termInfo{})
			st.termsAdded++
			st.deadTerms++
		}
		st.countTerm(id, fields, 1)
		d.terms = append(d.terms, uint32(id)<<numTextFields|uint32(fields))
	}
	st.docs[ord] = d
	st.index(ord)
	st.sg.set(search.SuggestTitle, int32(ord), d.title, d.id.String())
}

// facet returns the index of a facet value, creating it; the display name follows the
// latest document.
func (st *state) facet(list *[]*facetValue, byKey map[string]int32, key, name string) int32 {
	if i, ok := byKey[key]; ok {
		(*list)[i].name = name
		return i
	}
	i := int32(len(*list))
	*list = append(*list, &facetValue{key: key, name: name, bm: roaring.New()})
	byKey[key] = i
	return i
}

func (st *state) remove(id uuid.UUID) {
	ord, ok := st.byID[id]
	if !ok {
		return
	}
	st.unindex(ord)
	st.uncount(ord)
	st.sg.removeTitle(ord)
	delete(st.byID, id)
	st.docs[ord] = docInfo{}
	st.free = append(st.free, ord)
}

// countTerm adds delta (1 or -1) to the counts of term id in the given fields.
func (st *state) countTerm(id int32, fields uint8, delta int32) {
	ti := &st.termStat[id]
	switch ti.docs += delta; {
	case ti.docs == 0:
		st.deadTerms++
	case ti.docs == 1 && delta > 0:
		st.deadTerms--
	}
	for f := range numTextFields {
		if fields&(1<<f) != 0 {
			ti.field[f] += delta
		}
	}
}

// uncount takes a document's terms out of the counts.
func (st *state) uncount(ord uint32) {
	for _, t := range st.docs[ord].terms {
		st.countTerm(int32(t>>numTextFields), uint8(t&(1<<numTextFields-1)), -1)
	}
}

// compactTerms drops the terms no document has any more, once they are many: the
// vocabulary would keep walking them.
func (st *state) compactTerms() {
	if st.deadTerms < 1024 || st.deadTerms*4 < len(st.termStr) {
		return
	}
	remap := make([]int32, len(st.termStr))
	var strs []string
	var stats []termInfo
	for id, ti := range st.termStat {
		remap[id] = -1
		if ti.docs > 0 {
			remap[id] = int32(len(strs))
			strs = append(strs, st.termStr[id])
			stats = append(stats, ti)
		} else {
			delete(st.termID, st.termStr[id])
		}
	}
	for t, id := range st.termID {
		st.termID[t] = remap[id]
	}
	for i := range st.docs {
		for k, t := range st.docs[i].terms {
			st.docs[i].terms[k] = uint32(remap[t>>numTextFields])<<numTextFields | t&(1<<numTextFields-1)
		}
	}
	st.termStr, st.termStat, st.deadTerms = strs, stats, 0
	st.termsAdded++
}

func (st *state) index(ord uint32) { st.setBits(ord, true) }

func (st *state) unindex(ord uint32) { st.setBits(ord, false) }

func (st *state) setBits(ord uint32, on bool) {
	d := &st.docs[ord]
	set := func(bm *roaring.Bitmap) {
		if on {
			bm.Add(ord)
		} else {
			bm.Remove(ord)
		}
	}
	sign := int64(1)
	if !on {
		sign = -1
	}
	set(st.live)
	if d.inStock {
		set(st.inStock)
	}
	set(st.prices[d.priceBucket])
	for i, t := range search.RatingThresholds {
		if d.rating >= t {
			set(st.ratings[i])
		}
	}
	set(st.langs[d.langIdx].bm)
	for _, a := range d.authorIdx {
		set(st.authors[a].bm)
		st.authors[a].sales += sign * d.sales
	}
	for _, c := range d.catIdx {
		set(st.cats[c].bm)
	}
	for f := range d.lens {
		st.lenSum[f] += sign * int64(d.lens[f])
	}
}
