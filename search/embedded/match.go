package embedded

import (
	"context"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/blevesearch/bleve/v2/index/scorch"
	index "github.com/blevesearch/bleve_index_api"
	"github.com/google/uuid"

	"github.com/shopfront/bookstore/catalog"
)

// Matching and scoring parameters.
const (
	maxQueryWords = 10 // like Meilisearch, later words are ignored

	// Field boosts: a word found in the title counts 3 times one in the description.
	boostTitle       = 3.0
	boostAuthors     = 2.5
	boostDescription = 1.0
	boostISBN        = 5.0

	// Weights of a word's expansions relative to the word itself.
	weightExact   = 1.0
	weightPrefix  = 0.8
	weightTypo1   = 0.45
	weightTypo2   = 0.25
	weightPrefix1 = 0.35 // prefix with one typo ("tolkei" for "tolkien")
	weightPrefix2 = 0.2

	// tieBreaker adds this share of a word's scores in other fields than its best.
	tieBreaker = 0.1

	// BM25.
	bm25K1 = 1.2
	bm25B  = 0.75

	// Bounds on a word's expansions: the best and most frequent terms win.
	maxPrefixTerms = 24
	maxTypoTerms   = 12
)

var fieldBoosts = [numTextFields]float64{boostTitle, boostAuthors, boostDescription}

// typoDistance is how many typos a word tolerates: 1 from 4 characters, 2 from 8.
func typoDistance(term string) int {
	switch n := runeLen(term); {
	case n >= 8:
		return 2
	case n >= 4:
		return 1
	}
	return 0
}

// isAllDigits reports whether s is non-empty and only ASCII digits.
func isAllDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// parsedText is a query text ready for matching.
type parsedText struct {
	isbn  string // set when the whole text is an ISBN: only that book matches
	words []string
	// prefix: the last word may be incomplete (the text does not end with a separator).
	prefix bool
}

func parseText(text string) parsedText {
	t := strings.TrimSpace(text)
	if t == "" {
		return parsedText{}
	}
	if isbn, err := catalog.NormalizeISBN(t); err == nil {
		return parsedText{isbn: isbn}
	}
	var p parsedText
	lastEnd := 0
	tokenize(text, func(term []byte, _, end int) {
		lastEnd = end
		if len(p.words) < maxQueryWords && !slices.Contains(p.words, string(term)) {
			p.words = append(p.words, string(term))
		}
	})
	p.prefix = len(p.words) > 0 && lastEnd == len(text)
	return p
}

// expansion is one term a query word matches in one field.
type expansion struct {
	field  int // a text field, or fieldISBNIndex
	term   string
	weight float64
	docs   int32 // documents containing the term in any field (0: unknown)
}

const fieldISBNIndex = numTextFields

// matchSet is the result of matching a text: the matching ordinals, and by ordinal
// their scores and the text fields they matched (bit i for field i). The dense arrays
// come from a pool: release returns them.
type matchSet struct {
	bm    *roaring.Bitmap
	dense *denseArrays
	oc    *ordCache // of the snapshot matched, to read stored descriptions
	// terms are the dictionary terms the text's words expanded to (for highlighting),
	// and wordTerms the same per word.
	terms     map[string]bool
	wordTerms []map[string]bool
}

// termStat is a candidate term (by vocabulary index), how many documents contain it and
// its weight as an expansion.
type termStat struct {
	idx    int
	count  int32
	weight float64
}

// expand returns the expansions of word: the word itself, its completions when it is
// the last word of the text, and the terms within its typo distance (with completions
// of those for the last word), each in every text field, best first and bounded.
//
// With completions false, the last word gets no exact completions (the caller checks
// them in memory) but still its completions with a typo.
func expand(r index.IndexReader, v *vocabulary, word string, last, completions bool) ([]expansion, error) {
	var out []expansion
	if isAllDigits(word) {
		out = append(out, expansion{field: fieldISBNIndex, term: word, weight: weightExact})
		if last && len(word) >= 6 {
			fd, err := r.FieldDictPrefix(fieldISBN, []byte(word))
			if err != nil {
				return nil, err
			}
			n := 0
			for e, err := fd.Next(); e != nil && n < maxPrefixTerms; e, err = fd.Next() {
				if err != nil {
					fd.Close()
					return nil, err
				}
				if e.Term != word {
					out = append(out, expansion{field: fieldISBNIndex, term: e.Term, weight: weightPrefix})
					n++
				}
			}
			fd.Close()
		}
	}
	cands := map[int]float64{} // vocabulary index -> weight
	if last && completions {
		lo, hi := v.prefixRange(word)
		var stats []termStat
		for i := lo; i < hi; i++ {
			// Completions are searched in titles and names only (see below): ranked by
			// their books there, so that words of descriptions do not take the slots.
			if n := v.inField(i, fieldTitle) + v.inField(i, fieldAuthors); n > 0 && v.terms[i] != word {
				stats = append(stats, termStat{idx: i, count: n, weight: weightPrefix})
			}
		}
		// Short prefixes are ambiguous: fewer, most frequent completions.
		limit := min(maxPrefixTerms, 8*runeLen(word))
		for _, s := range topTerms(stats, limit) {
			cands[s.idx] = s.weight
		}
	}
	if d := typoDistance(word); d > 0 {
		best := map[int]float64{}
		collect := func(i, dist int, completion bool) {
			if dist > 0 && v.docs(i) > 0 {
				if w := typoWeight(dist, completion); best[i] < w {
					best[i] = w
				}
			}
		}
		// One typo anywhere; two only when the word starts right (or with its first
		// two letters swapped): the walk then stays in one or two subtrees.
		v.fuzzy(word, 1, last, 0, len(v.terms), collect)
		if d == 2 {
			// (Letters, not bytes: a Cyrillic letter is two.)
			_, n0 := utf8.DecodeRuneInString(word)
			_, n1 := utf8.DecodeRuneInString(word[n0:])
			for _, first := range []string{word[:n0], word[n0 : n0+n1]} {
				lo, hi := v.prefixRange(first)
				v.fuzzy(word, 2, last, lo, hi, collect)
			}
		}
		stats := make([]termStat, 0, len(best))
		for i, w := range best {
			stats = append(stats, termStat{idx: i, count: v.docs(i), weight: w})
		}
		for _, s := range topTerms(stats, maxTypoTerms) {
			if cands[s.idx] < s.weight {
				cands[s.idx] = s.weight
			}
		}
	}
	terms := make([]termStat, 0, len(cands)+1)
	exact := -1
	if lo, hi := v.prefixRange(word); lo < hi && v.terms[lo] == word {
		exact = lo
	}
	terms = append(terms, termStat{idx: exact, weight: weightExact})
	for i, w := range cands {
		terms = append(terms, termStat{idx: i, weight: w, count: v.docs(i)})
	}
	for f := range numTextFields {
		for _, t := range terms {
			if t.idx >= 0 && v.inField(t.idx, f) == 0 {
				continue // in no live document's field
			}
			if f == fieldDescription && t.weight == weightPrefix {
				// Completions are for titles and names: in descriptions they would
				// match most books for a word being typed ("th...").
				continue
			}
			term, docs := word, int32(0) // also when not in the vocabulary: its postings may be newer
			if t.idx >= 0 {
				term, docs = v.terms[t.idx], v.docs(t.idx)
			}
			out = append(out, expansion{field: f, term: term, weight: t.weight, docs: docs})
		}
	}
	return out, nil
}

func typoWeight(dist int, prefix bool) float64 {
	switch {
	case prefix && dist == 1:
		return weightPrefix1
	case prefix:
		return weightPrefix2
	case dist == 1:
		return weightTypo1
	}
	return weightTypo2
}

// topTerms returns the n best terms: highest weight, then most frequent, then first in
// the vocabulary.
func topTerms(stats []termStat, n int) []termStat {
	if len(stats) <= n {
		return stats
	}
	sort.Slice(stats, func(i, j int) bool {
		a, b := stats[i], stats[j]
		if a.weight != b.weight {
			return a.weight > b.weight
		}
		if a.count != b.count {
			return a.count > b.count
		}
		return a.idx < b.idx
	})
	return stats[:n]
}

// wordReaders are the open postings of one query word.
type wordReaders struct {
	readers []termReader
	df      uint64 // sum of the readers' document counts, to order words
	// prefix, for the last word of a text of several words when it may be incomplete:
	// a document also matches when a word of its title or authors starts with it,
	// checked in memory, so every completion counts however many there are.
	prefix string
	terms  map[string]bool // completions met in memory, for highlighting
}

type termReader struct {
	r     index.TermFieldReader
	field int
	term  string
	// per-posting score factors
	weight float64 // boost * expansion weight * idf
	avgLen float64
	approx bool // no frequencies nor norms: score tf 1 at average length
}

func (w *wordReaders) close() {
	for _, t := range w.readers {
		t.r.Close()
	}
}

// denseArrays are per-ordinal scores and field masks; only the entries of the match
// set are meaningful (and non-zero).
type denseArrays struct {
	score []float32
	mask  []uint8
	doc   []uint32 // Bleve document number
}

var densePool = sync.Pool{New: func() any { return new(denseArrays) }}

func newMatchSet(n int) *matchSet {
	da := densePool.Get().(*denseArrays)
	if len(da.score) < n {
		da.score = make([]float32, n+n/4)
		da.mask = make([]uint8, n+n/4)
		da.doc = make([]uint32, n+n/4)
	}
	return &matchSet{bm: roaring.New(), dense: da, terms: map[string]bool{}}
}

func (ms *matchSet) add(ord uint32, score float32, mask uint8, docnum uint64) {
	ms.dense.score[ord] = score
	ms.dense.mask[ord] = mask
	ms.dense.doc[ord] = uint32(docnum)
}

// seal builds the bitmap from the ordinals given to add.
func (ms *matchSet) seal(ords []uint32) {
	if len(ords)*16 > len(ms.dense.score) {
		// Many: a scan of the dense array is cheaper than sorting.
		out := ords[:0]
		for ord, s := range ms.dense.score {
			if s != 0 {
				out = append(out, uint32(ord))
			}
		}
		ords = out
	} else {
		slices.Sort(ords)
	}
	ms.bm.AddMany(ords)
}

func (ms *matchSet) score(ord uint32) float32 { return ms.dense.score[ord] }
func (ms *matchSet) mask(ord uint32) uint8    { return ms.dense.mask[ord] }
func (ms *matchSet) docnum(ord uint32) uint64 { return uint64(ms.dense.doc[ord]) }

// release returns the dense arrays to their pool, zeroed.
func (ms *matchSet) release() {
	if ms == nil || ms.dense == nil {
		return
	}
	it := ms.bm.Iterator()
	for it.HasNext() {
		ord := it.Next()
		ms.dense.score[ord], ms.dense.mask[ord], ms.dense.doc[ord] = 0, 0, 0
	}
	densePool.Put(ms.dense)
	ms.dense = nil
}

// scratch holds per-query arrays indexed by Bleve document number.
type scratch struct {
	acc  []float32 // running score of the documents still matching
	best []float32 // the current word's best field score
	sum  []float32 // the current word's total over fields
	mask []uint8
	set  []uint32 // document numbers still matching, increasing
	next []uint32
	hit  []uint32 // document numbers the current word touched
	id   []byte   // scratch internal id for Advance
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

func (s *scratch) grow(n int) {
	if n <= len(s.acc) {
		return
	}
	n = max(n, 2*len(s.acc), 1024)
	s.acc = append(s.acc, make([]float32, n-len(s.acc))...)
	s.best = append(s.best, make([]float32, n-len(s.best))...)
	s.sum = append(s.sum, make([]float32, n-len(s.sum))...)
	s.mask = append(s.mask, make([]uint8, n-len(s.mask))...)
}

// match runs the text against the index snapshot r. st must be the state read-locked by
// the caller; it maps Bleve documents to ordinals.
func (ix *Index) match(ctx context.Context, r index.IndexReader, st *state, p parsedText) (*matchSet, error) {
	ms := newMatchSet(len(st.docs))
	ms.oc = ix.ordCacheFor(r, st)
	if p.isbn != "" {
		tfr, err := r.TermFieldReader(ctx, []byte(p.isbn), fieldISBN, false, false, false)
		if err != nil {
			return nil, err
		}
		defer tfr.Close()
		var tfd index.TermFieldDoc
		for {
			t, err := tfr.Next(&tfd)
			if err != nil {
				return nil, err
			}
			if t == nil {
				break
			}
			if ord, ok := ms.oc.ordOf(st, t.ID); ok {
				ms.add(ord, 1, 0, t.ID.Value())
				ms.bm.Add(ord)
			}
		}
		return ms, nil
	}
	n := float64(len(st.byID))
	if n == 0 || len(p.words) == 0 {
		return ms, nil
	}
	var avgLen [numTextFields]float64
	for f := range avgLen {
		avgLen[f] = max(float64(st.lenSum[f])/n, 1)
	}

	words := make([]*wordReaders, 0, len(p.words))
	defer func() {
		for _, w := range words {
			w.close()
		}
	}()
	vocab := ix.vocabulary(st)
	for i, word := range p.words {
		last := p.prefix && i == len(p.words)-1
		memPrefix := last && len(p.words) > 1
		exps, err := expand(r, vocab, word, last, !memPrefix)
		if err != nil {
			return nil, err
		}
		wr := &wordReaders{}
		if memPrefix {
			wr.prefix, wr.terms = word, map[string]bool{}
		}
		words = append(words, wr)
		// Blend document frequencies per field (the largest of the word's terms), so a
		// rare typo does not outscore the common word it stands for.
		var dfField [numTextFields + 1]uint64
		for _, e := range exps {
			field := fieldISBN
			if e.field < numTextFields {
				field = textFieldNames[e.field]
			}
			// A term in most documents weighs little (low idf): read its postings
			// without frequencies and norms, which makes seeking in them cheap, and
			// score it as if it occurred once in a field of average length.
			approx := float64(e.docs) > n/8
			tfr, err := r.TermFieldReader(ctx, []byte(e.term), field, !approx, !approx, false)
			if err != nil {
				return nil, err
			}
			c := tfr.Count()
			if c == 0 {
				tfr.Close()
				continue
			}
			dfField[e.field] = max(dfField[e.field], c)
			wr.df += c
			wr.readers = append(wr.readers, termReader{r: tfr, field: e.field, term: e.term, weight: e.weight, approx: approx})
		}
		if len(wr.readers) == 0 && wr.prefix == "" {
			return ms, nil // a word matches nothing: neither does the text
		}
		for k := range wr.readers {
			t := &wr.readers[k]
			df := float64(dfField[t.field])
			idf := math.Log(1 + (max(n, df)-df+0.5)/(df+0.5))
			if t.field == fieldISBNIndex {
				t.weight *= boostISBN * idf
				continue
			}
			t.weight *= fieldBoosts[t.field] * idf
			t.avgLen = avgLen[t.field]
		}
	}
	// Rarest word first: the later ones only need to confirm its documents. A prefix
	// checked in memory comes last, to check as few documents as possible.
	sort.SliceStable(words, func(i, j int) bool {
		if (words[i].prefix == "") != (words[j].prefix == "") {
			return words[i].prefix == ""
		}
		return words[i].df < words[j].df
	})
	// A completion found in memory scores like a title or author word of moderate rarity.
	nominalIDF := math.Log(1 + (n-10+0.5)/(10+0.5))
	oc := ms.oc

	sc := scratchPool.Get().(*scratch)
	clean := false // the arrays are back to zero: the scratch can be reused
	defer func() {
		if clean {
			scratchPool.Put(sc)
		}
	}()
	sc.set = sc.set[:0]
	var tfd index.TermFieldDoc
	for wi, w := range words {
		sc.hit = sc.hit[:0]
		record := func(t *termReader, d uint32, tfd *index.TermFieldDoc) {
			sc.grow(int(d) + 1)
			s := float32(score(t, tfd))
			if sc.sum[d] == 0 {
				sc.hit = append(sc.hit, d)
			}
			sc.sum[d] += s
			sc.best[d] = max(sc.best[d], s)
			if t.field < numTextFields {
				sc.mask[d] |= 1 << t.field
			}
		}
		for k := range w.readers {
			t := &w.readers[k]
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			switch {
			case wi == 0:
				for {
					p, err := t.r.Next(&tfd)
					if err != nil {
						return nil, err
					}
					if p == nil {
						break
					}
					record(t, uint32(p.ID.Value()), p)
				}
			case t.r.Count() > 8*uint64(len(sc.set)):
				// Few candidates left: seek to them.
				for i := 0; i < len(sc.set); {
					sc.id = index.NewIndexInternalID(sc.id[:0], uint64(sc.set[i]))
					p, err := t.r.Advance(sc.id, &tfd)
					if err != nil {
						return nil, err
					}
					if p == nil {
						break
					}
					d := uint32(p.ID.Value())
					for i < len(sc.set) && sc.set[i] < d {
						i++
					}
					if i < len(sc.set) && sc.set[i] == d {
						record(t, d, p)
						i++
					}
				}
			default:
				for {
					p, err := t.r.Next(&tfd)
					if err != nil {
						return nil, err
					}
					if p == nil {
						break
					}
					if d := uint32(p.ID.Value()); int(d) < len(sc.acc) && sc.acc[d] > 0 {
						record(t, d, p)
					}
				}
			}
		}
		// Fold the word into the running scores; documents it missed drop out.
		wordScore := func(d uint32) float32 {
			return sc.best[d] + tieBreaker*(sc.sum[d]-sc.best[d])
		}
		if wi == 0 {
			if len(sc.hit)*16 > len(sc.sum) {
				// Many: collect them in order from the dense array instead of sorting.
				sc.hit = sc.hit[:0]
				for d, v := range sc.sum {
					if v > 0 {
						sc.hit = append(sc.hit, uint32(d))
					}
				}
			} else {
				slices.Sort(sc.hit)
			}
			for _, d := range sc.hit {
				sc.acc[d] = wordScore(d)
			}
			sc.set = append(sc.set, sc.hit...)
		} else {
			sc.next = sc.next[:0]
			for _, d := range sc.set {
				if sc.sum[d] > 0 {
					sc.acc[d] += wordScore(d)
					sc.next = append(sc.next, d)
					continue
				}
				if w.prefix != "" {
					sc.id = index.NewIndexInternalID(sc.id[:0], uint64(d))
					if ord, ok := oc.ordOf(st, sc.id); ok {
						if f, term := completion(&st.docs[ord], w.prefix); f >= 0 {
							sc.acc[d] += float32(weightPrefix * fieldBoosts[f] * nominalIDF)
							sc.mask[d] |= 1 << f
							w.terms[term] = true
							sc.next = append(sc.next, d)
							continue
						}
					}
				}
				sc.acc[d], sc.mask[d] = 0, 0
			}
			sc.set, sc.next = sc.next, sc.set
		}
		for _, d := range sc.hit {
			sc.best[d], sc.sum[d] = 0, 0
		}
		if len(sc.set) == 0 {
			break
		}
	}
	for _, w := range words {
		wt := map[string]bool{}
		for _, t := range w.readers {
			ms.terms[t.term] = true
			wt[t.term] = true
		}
		for t := range w.terms {
			ms.terms[t] = true
			wt[t] = true
		}
		ms.wordTerms = append(ms.wordTerms, wt)
	}
	ords := make([]uint32, 0, len(sc.set))
	for _, d := range sc.set {
		sc.id = index.NewIndexInternalID(sc.id[:0], uint64(d))
		if ord, ok := oc.ordOf(st, sc.id); ok {
			ords = append(ords, ord)
			ms.add(ord, sc.acc[d], sc.mask[d], uint64(d))
		}
		sc.acc[d], sc.mask[d] = 0, 0
	}
	clean = true
	ms.seal(ords)
	return ms, nil
}

// completion returns the field and the term of the first word of a document's title
// (then authors) that starts with prefix, or -1.
func completion(d *docInfo, prefix string) (int, string) {
	for _, t := range d.titleTerms {
		if strings.HasPrefix(t, prefix) {
			return fieldTitle, t
		}
	}
	for _, t := range d.authorTerms {
		if strings.HasPrefix(t, prefix) {
			return fieldAuthors, t
		}
	}
	return -1, ""
}

// score is the BM25 score of one posting, times the reader's weight.
func score(t *termReader, p *index.TermFieldDoc) float64 {
	if t.field == fieldISBNIndex {
		return t.weight
	}
	if t.approx {
		return t.weight // tf 1, length = average: (k1+1)/(1+k1) = 1
	}
	tf := float64(p.Freq)
	dl := t.avgLen
	if p.Norm > 0 {
		dl = 1 / (p.Norm * p.Norm)
	}
	return t.weight * tf * (bm25K1 + 1) / (tf + bm25K1*(1-bm25B+bm25B*dl/t.avgLen))
}

// ordCache maps the document numbers of one Bleve snapshot to ordinals of one state
// version, filled as documents are met. It holds the snapshot only to compare it.
type ordCache struct {
	reader  index.IndexReader
	version uint64
	ords    []atomic.Int64 // document number -> ordinal+1, -1 when unknown, 0 not yet looked up
	// The snapshot's segments and the first document number of each, to read stored
	// fields by document number.
	segs    []*scorch.SegmentSnapshot
	offsets []uint64
}

// ordCacheFor returns the cache for a snapshot and state.
func (ix *Index) ordCacheFor(r index.IndexReader, st *state) *ordCache {
	if c := ix.ordc.Load(); c != nil && c.reader == r && c.version == st.version {
		return c
	}
	c := &ordCache{reader: r, version: st.version}
	n := uint64(0)
	if segs, ok := r.(interface {
		Segments() []*scorch.SegmentSnapshot
	}); ok {
		c.segs = segs.Segments()
		// Document numbers count a segment's deleted documents too (as Bleve's own
		// offsets do): an updated document leaves its old number behind, and counting
		// live documents only would read a neighbour's stored fields.
		for _, s := range c.segs {
			c.offsets = append(c.offsets, n)
			n += s.Segment().Count()
		}
	}
	c.ords = make([]atomic.Int64, n)
	ix.ordc.Store(c)
	return c
}

// description returns the stored description of document docnum of the snapshot, whose
// id must be id: a description is never shown under another book's title.
func (c *ordCache) description(docnum uint64, id string) (string, bool) {
	i := sort.Search(len(c.offsets), func(i int) bool { return c.offsets[i] > docnum }) - 1
	if i < 0 || docnum-c.offsets[i] >= c.segs[i].Segment().Count() {
		return "", false
	}
	var desc string
	found, own := false, false
	err := c.segs[i].VisitDocument(docnum-c.offsets[i], func(field string, _ byte, value []byte, _ []uint64) bool {
		switch field {
		case "_id": // visited first
			own = string(value) == id
			return own
		case "description":
			desc, found = string(value), true
			return false
		}
		return true
	})
	return desc, err == nil && own && found
}

// ordOf maps a Bleve document to its ordinal; false for documents the state does not
// know (written to Bleve, not yet applied to the state).
func (c *ordCache) ordOf(st *state, id index.IndexInternalID) (uint32, bool) {
	d := id.Value()
	if d < uint64(len(c.ords)) {
		switch v := c.ords[d].Load(); {
		case v > 0:
			return uint32(v - 1), true
		case v < 0:
			return 0, false
		}
	}
	ord, ok := lookupOrd(c.reader, st, id)
	if d < uint64(len(c.ords)) {
		if ok {
			c.ords[d].Store(int64(ord) + 1)
		} else {
			c.ords[d].Store(-1)
		}
	}
	return ord, ok
}

func lookupOrd(r index.IndexReader, st *state, id index.IndexInternalID) (uint32, bool) {
	ext, err := r.ExternalID(id)
	if err != nil {
		return 0, false
	}
	u, err := uuid.Parse(ext)
	if err != nil {
		return 0, false
	}
	ord, ok := st.byID[u]
	return ord, ok
}
