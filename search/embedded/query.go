package embedded

import (
	"cmp"
	"container/heap"
	"context"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/google/uuid"

	"github.com/shopfront/bookstore/search"
)

// Search implements search.Index.
func (ix *Index) Search(ctx context.Context, q search.Query) (search.Result, error) {
	q, err := q.Normalized()
	if err != nil {
		return search.Result{}, err
	}
	if ix.closed.Load() {
		return search.Result{}, search.ErrClosed
	}
	key := queryKey(&q)
	if v, ok := ix.cache.get(key); ok {
		return cloneResult(v.(*search.Result)), nil
	}
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	if ix.closed.Load() {
		return search.Result{}, search.ErrClosed
	}
	res, err := ix.search(ctx, ix.st, &q)
	if err != nil {
		return search.Result{}, err
	}
	ix.cache.put(key, &res)
	return cloneResult(&res), nil
}

func (ix *Index) search(ctx context.Context, st *state, q *search.Query) (search.Result, error) {
	var (
		ms   *matchSet
		base *roaring.Bitmap // documents matching the text
	)
	p := parseText(q.Text)
	if p.isbn != "" || len(p.words) > 0 {
		// The snapshot stays open until the highlights have read their descriptions.
		r, err := ix.raw.Reader()
		if err != nil {
			return search.Result{}, err
		}
		defer r.Close()
		ms, err = ix.match(ctx, r, st, p)
		if err != nil {
			return search.Result{}, err
		}
		defer ms.release()
		base = ms.bm
	} else {
		base = st.live
	}
	if len(q.Exclude) > 0 {
		ex := roaring.New()
		for _, id := range q.Exclude {
			if ord, ok := st.byID[id]; ok {
				ex.Add(ord)
			}
		}
		base = roaring.AndNot(base, ex)
	}

	f := st.filters(ix.sortOrders(st), &q.Filter, base)
	full := f.without(-1)
	res := search.Result{Total: int(full.GetCardinality())}
	if !q.SkipFacets {
		res.Facets = st.facets(ix.sortOrders(st), f, &q.Filter)
	}
	if q.Offset < res.Total {
		ords := ix.page(st, ms, full, q)
		res.Hits = make([]search.Hit, len(ords))
		for i, ord := range ords {
			res.Hits[i].ID = st.docs[ord].id
			if ms != nil && len(ms.terms) > 0 {
				res.Hits[i].Highlights = ix.highlights(st, ord, ms)
			}
		}
	}
	return res, nil
}

// Filter groups, in the order of filterSet.groups.
const (
	groupGenre = iota
	groupAuthor
	groupPrice
	groupRating
	groupStock
	groupLanguage
	numGroups
)

// filterSet is a search's base set and the bitmap of each active filter group.
type filterSet struct {
	base   *roaring.Bitmap
	groups [numGroups]*roaring.Bitmap // nil: the group does not filter
	memo   map[int]*roaring.Bitmap
}

// without returns the base set filtered by every group but skip (-1: all groups).
func (f *filterSet) without(skip int) *roaring.Bitmap {
	if skip >= 0 && f.groups[skip] == nil {
		skip = -1 // the group does not filter: same set
	}
	if b, ok := f.memo[skip]; ok {
		return b
	}
	var parts []*roaring.Bitmap
	for g, b := range f.groups {
		if b != nil && g != skip {
			parts = append(parts, b)
		}
	}
	var out *roaring.Bitmap
	if len(parts) == 0 {
		out = f.base
	} else {
		slices.SortFunc(parts, func(a, b *roaring.Bitmap) int {
			return cmp.Compare(a.GetCardinality(), b.GetCardinality())
		})
		out = roaring.And(f.base, parts[0])
		for _, b := range parts[1:] {
			out.And(b)
		}
	}
	if f.memo == nil {
		f.memo = map[int]*roaring.Bitmap{}
	}
	f.memo[skip] = out
	return out
}

// filters builds the filter groups of a query.
func (st *state) filters(so *sortOrders, flt *search.Filter, base *roaring.Bitmap) *filterSet {
	f := &filterSet{base: base}
	if len(flt.Categories) > 0 {
		var bms []*roaring.Bitmap
		for _, slug := range flt.Categories {
			if i, ok := st.catByKey[slug]; ok {
				bms = append(bms, st.cats[i].bm)
			}
		}
		f.groups[groupGenre] = roaring.FastOr(bms...)
	}
	if len(flt.AuthorIDs) > 0 {
		var bms []*roaring.Bitmap
		for _, id := range flt.AuthorIDs {
			if i, ok := st.authByID[id.String()]; ok {
				bms = append(bms, st.authors[i].bm)
			}
		}
		f.groups[groupAuthor] = roaring.FastOr(bms...)
	}
	if flt.MinPriceCents != nil || flt.MaxPriceCents != nil {
		lo, hi := int64(math.MinInt64), int64(math.MaxInt64)
		if flt.MinPriceCents != nil {
			lo = *flt.MinPriceCents
		}
		if flt.MaxPriceCents != nil {
			hi = *flt.MaxPriceCents
		}
		f.groups[groupPrice] = st.priceRange(so, lo, hi)
	}
	if flt.MinRating != nil {
		f.groups[groupRating] = st.ratingAtLeast(so, *flt.MinRating)
	}
	if flt.InStock != nil {
		if *flt.InStock {
			f.groups[groupStock] = st.inStock
		} else {
			f.groups[groupStock] = roaring.AndNot(st.live, st.inStock)
		}
	}
	if flt.Language != "" {
		if i, ok := st.langBy[flt.Language]; ok {
			f.groups[groupLanguage] = st.langs[i].bm
		} else {
			f.groups[groupLanguage] = roaring.New()
		}
	}
	return f
}

// priceRange returns the documents priced within [lo, hi].
func (st *state) priceRange(so *sortOrders, lo, hi int64) *roaring.Bitmap {
	if lo > hi {
		return roaring.New()
	}
	order := so.order[search.SortPriceAsc]
	i := sort.Search(len(order), func(k int) bool { return st.docs[order[k]].price >= lo })
	j := sort.Search(len(order), func(k int) bool { return st.docs[order[k]].price > hi })
	return so.bands[search.SortPriceAsc].span(order, i, j)
}

// ratingAtLeast returns the documents rated min or better.
func (st *state) ratingAtLeast(so *sortOrders, min float64) *roaring.Bitmap {
	for i, t := range search.RatingThresholds {
		if t == min {
			return st.ratings[i]
		}
	}
	if min <= 0 {
		return st.live
	}
	order := so.order[search.SortRating] // rating descending
	j := sort.Search(len(order), func(k int) bool { return st.docs[order[k]].rating < min })
	return so.bands[search.SortRating].span(order, 0, j)
}

// bands cut a sort order into consecutive runs of positions, each with the bitmap of
// its documents, so that the documents at positions [i, j) of the order are a union
// of whole bands and two partial ones.
type bands struct {
	size int
	bms  []*roaring.Bitmap
}

const numBands = 64

func newBands(order []uint32) bands {
	b := bands{size: max(1, (len(order)+numBands-1)/numBands)}
	for start := 0; start < len(order); start += b.size {
		ords := slices.Clone(order[start:min(start+b.size, len(order))])
		slices.Sort(ords)
		b.bms = append(b.bms, roaring.BitmapOf(ords...))
	}
	return b
}

// span returns the documents at positions [i, j) of order.
func (b bands) span(order []uint32, i, j int) *roaring.Bitmap {
	out := roaring.New()
	if i >= j {
		return out
	}
	first, last := (i+b.size-1)/b.size, j/b.size // whole bands [first, last)
	if first >= last {
		for _, ord := range order[i:j] {
			out.Add(ord)
		}
		return out
	}
	out = roaring.FastOr(b.bms[first:last]...)
	for _, ord := range order[i : first*b.size] {
		out.Add(ord)
	}
	for _, ord := range order[last*b.size : j] {
		out.Add(ord)
	}
	return out
}

// facets counts each facet group over the base set filtered by the other groups.
func (st *state) facets(so *sortOrders, f *filterSet, flt *search.Filter) search.Facets {
	// Groups sharing a set (those not filtering share the fully filtered one) are
	// counted together.
	var sets []*roaring.Bitmap
	var need [][]int
	for g := range numGroups {
		s := f.without(g)
		k := slices.Index(sets, s)
		if k < 0 {
			k = len(sets)
			sets = append(sets, s)
			need = append(need, nil)
		}
		need[k] = append(need[k], g)
	}
	var fc facetCounts
	fc.cats = make([]int32, len(st.cats))
	fc.langs = make([]int32, len(st.langs))
	c := counterPool.Get().(*counter)
	defer counterPool.Put(c)
	for k, set := range sets {
		st.count(so, set, need[k], &fc, c)
	}

	var out search.Facets
	for i, c := range st.cats {
		if n := int(fc.cats[i]); n > 0 || slices.Contains(flt.Categories, c.key) {
			out.Genres = append(out.Genres, search.FacetCount{Value: c.key, Count: n})
		}
	}
	for _, slug := range flt.Categories {
		if _, ok := st.catByKey[slug]; !ok {
			out.Genres = append(out.Genres, search.FacetCount{Value: slug})
		}
	}
	sortFacetCounts(out.Genres)
	out.Authors = st.topAuthors(so, c, flt.AuthorIDs)
	for i, l := range st.langs {
		if n := int(fc.langs[i]); l.key != "" && (n > 0 || l.key == flt.Language) {
			out.Languages = append(out.Languages, search.FacetCount{Value: l.key, Count: n})
		}
	}
	if _, ok := st.langBy[flt.Language]; !ok && flt.Language != "" {
		out.Languages = append(out.Languages, search.FacetCount{Value: flt.Language})
	}
	sortFacetCounts(out.Languages)
	out.Prices = make([]search.PriceBucket, len(search.PriceBuckets))
	for i, b := range search.PriceBuckets {
		out.Prices[i] = b
		out.Prices[i].Count = int(fc.prices[i])
	}
	out.MinPriceCents, out.MaxPriceCents = fc.minPrice, fc.maxPrice
	out.Ratings = make([]search.RatingBucket, len(search.RatingThresholds))
	for i, t := range search.RatingThresholds {
		out.Ratings[i] = search.RatingBucket{MinRating: t, Count: int(fc.ratings[i])}
	}
	out.InStock = int(fc.inStock)
	return out
}

// facetCounts are the raw counts of Facets (authors are counted in a counter).
type facetCounts struct {
	cats, langs        []int32
	prices             [5]int32
	ratings            [4]int32
	inStock            int32
	minPrice, maxPrice int64
}

// count adds to fc and c the counts of the groups in need over set: for a small set by
// visiting its documents once, otherwise by intersecting bitmaps (and precomputed
// cardinalities when set is every document).
func (st *state) count(so *sortOrders, set *roaring.Bitmap, need []int, fc *facetCounts, c *counter) {
	var genre, author, price, rating, stock, lang bool
	for _, g := range need {
		switch g {
		case groupGenre:
			genre = true
		case groupAuthor:
			author = true
		case groupPrice:
			price = true
		case groupRating:
			rating = true
		case groupStock:
			stock = true
		case groupLanguage:
			lang = true
		}
	}
	if author {
		if set == st.live {
			c.all = so.authorCounts // browsing: precomputed
		} else {
			st.countAuthors(set, c)
		}
	}
	n := set.GetCardinality()
	if n == 0 {
		return
	}
	if n*3 < st.live.GetCardinality() {
		lo, hi := int64(math.MaxInt64), int64(math.MinInt64)
		it := set.ManyIterator()
		for k := it.NextMany(c.buf[:]); k > 0; k = it.NextMany(c.buf[:]) {
			for _, ord := range c.buf[:k] {
				d := &st.docs[ord]
				if genre {
					for _, ci := range d.catIdx {
						fc.cats[ci]++
					}
				}
				if lang {
					fc.langs[d.langIdx]++
				}
				if price {
					fc.prices[d.priceBucket]++
					lo, hi = min(lo, d.price), max(hi, d.price)
				}
				if rating {
					for i, t := range search.RatingThresholds {
						if d.rating >= t {
							fc.ratings[i]++
						}
					}
				}
				if stock && d.inStock {
					fc.inStock++
				}
			}
		}
		if price {
			fc.minPrice, fc.maxPrice = lo, hi
		}
		return
	}
	cnt := func(bm *roaring.Bitmap) int32 {
		if set == st.live {
			return int32(bm.GetCardinality())
		}
		return int32(bm.AndCardinality(set))
	}
	if genre {
		for i, cv := range st.cats {
			fc.cats[i] = cnt(cv.bm)
		}
	}
	if lang {
		for i, l := range st.langs {
			fc.langs[i] = cnt(l.bm)
		}
	}
	if price {
		for i := range search.PriceBuckets {
			fc.prices[i] = cnt(st.prices[i])
		}
		fc.minPrice, fc.maxPrice = st.priceBounds(so, set)
	}
	if rating {
		for i := range search.RatingThresholds {
			fc.ratings[i] = cnt(st.ratings[i])
		}
	}
	if stock {
		fc.inStock = cnt(st.inStock)
	}
}

func sortFacetCounts(fc []search.FacetCount) {
	slices.SortFunc(fc, func(a, b search.FacetCount) int {
		if a.Count != b.Count {
			return cmp.Compare(b.Count, a.Count)
		}
		return strings.Compare(a.Value, b.Value)
	})
}

// countAuthors counts the books of set per author into c.
func (st *state) countAuthors(set *roaring.Bitmap, c *counter) {
	if len(c.n) < len(st.authors) {
		c.n = make([]int32, len(st.authors)+len(st.authors)/4)
	}
	it := set.ManyIterator()
	for k := it.NextMany(c.buf[:]); k > 0; k = it.NextMany(c.buf[:]) {
		for _, ord := range c.buf[:k] {
			for _, a := range st.docs[ord].authorIdx {
				if c.n[a] == 0 {
					c.touched = append(c.touched, a)
				}
				c.n[a]++
			}
		}
	}
}

// topAuthors returns the most frequent authors counted in c, plus the selected ones,
// and resets c.
func (st *state) topAuthors(so *sortOrders, c *counter, selected []uuid.UUID) []search.FacetCount {
	if c.all != nil {
		out := slices.Clone(so.topAuthors)
		for _, id := range selected {
			key := id.String()
			if !slices.ContainsFunc(out, func(fc search.FacetCount) bool { return fc.Value == key }) {
				n := 0
				if i, ok := st.authByID[key]; ok {
					n = int(c.all[i])
				}
				out = append(out, search.FacetCount{Value: key, Count: n})
			}
		}
		c.all = nil
		sortFacetCounts(out)
		return out
	}
	h := make(facetHeap, 0, search.AuthorFacetLimit)
	for _, a := range c.touched {
		key := st.authors[a].key
		if key[0] == 'n' && strings.HasPrefix(key, "name:") {
			continue // an author without id cannot be filtered on
		}
		fc := search.FacetCount{Value: key, Count: int(c.n[a])}
		if h.Len() < search.AuthorFacetLimit {
			heap.Push(&h, fc)
		} else if facetLess(h[0], fc) {
			h[0] = fc
			heap.Fix(&h, 0)
		}
	}
	out := []search.FacetCount(h)
	for _, id := range selected {
		key := id.String()
		if slices.ContainsFunc(out, func(fc search.FacetCount) bool { return fc.Value == key }) {
			continue
		}
		n := 0
		if i, ok := st.authByID[key]; ok {
			n = int(c.n[i])
		}
		out = append(out, search.FacetCount{Value: key, Count: n})
	}
	for _, a := range c.touched {
		c.n[a] = 0
	}
	c.touched = c.touched[:0]
	sortFacetCounts(out)
	return out
}

// counter is scratch space for counting facet values.
type counter struct {
	n       []int32
	touched []int32
	all     []int32 // instead of n: counts over every document
	buf     [256]uint32
}

var counterPool = sync.Pool{New: func() any { return new(counter) }}

// facetLess orders facet counts worst first (fewer books, then later value).
func facetLess(a, b search.FacetCount) bool {
	if a.Count != b.Count {
		return a.Count < b.Count
	}
	return a.Value > b.Value
}

type facetHeap []search.FacetCount

func (h facetHeap) Len() int           { return len(h) }
func (h facetHeap) Less(i, j int) bool { return facetLess(h[i], h[j]) }
func (h facetHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *facetHeap) Push(x any)        { *h = append(*h, x.(search.FacetCount)) }
func (h *facetHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// priceBounds returns the lowest and highest price in set.
func (st *state) priceBounds(so *sortOrders, set *roaring.Bitmap) (int64, int64) {
	n := set.GetCardinality()
	if n == 0 {
		return 0, 0
	}
	if n*16 >= uint64(len(so.order[search.SortPriceAsc])) {
		// Dense: walk the price order from both ends.
		order := so.order[search.SortPriceAsc]
		var lo, hi int64
		for _, ord := range order {
			if set.Contains(ord) {
				lo = st.docs[ord].price
				break
			}
		}
		for i := len(order) - 1; i >= 0; i-- {
			if set.Contains(order[i]) {
				hi = st.docs[order[i]].price
				break
			}
		}
		return lo, hi
	}
	lo, hi := int64(math.MaxInt64), int64(math.MinInt64)
	it := set.Iterator()
	for it.HasNext() {
		p := st.docs[it.Next()].price
		lo, hi = min(lo, p), max(hi, p)
	}
	return lo, hi
}

// page returns the ordinals of the requested page of full, in order.
func (ix *Index) page(st *state, ms *matchSet, full *roaring.Bitmap, q *search.Query) []uint32 {
	so := ix.sortOrders(st)
	want := q.Offset + q.Limit
	sortBy := q.Sort
	if sortBy == search.SortRelevance && ms == nil {
		sortBy = search.SortBestselling
	}
	if sortBy == search.SortRelevance {
		// Top `want` by score (with a nudge for popular books), ties by sales.
		best := &rankHeap{}
		pop := so.rank[search.SortBestselling]
		it := full.Iterator()
		for it.HasNext() {
			ord := it.Next()
			e := ranked{ord: ord, score: float64(ms.score(ord)) * popularity(st.docs[ord].sales), tie: pop[ord]}
			if best.Len() < want {
				heap.Push(best, e)
			} else if rankBefore(e, (*best)[0]) {
				(*best)[0] = e
				heap.Fix(best, 0)
			}
		}
		out := make([]ranked, best.Len())
		for i := len(out) - 1; i >= 0; i-- {
			out[i] = heap.Pop(best).(ranked)
		}
		return ordsOf(out, q.Offset)
	}
	order, rank := so.order[sortBy], so.rank[sortBy]
	n := full.GetCardinality()
	if n*8 >= uint64(len(order)) {
		// Dense: walk the order.
		out := make([]uint32, 0, q.Limit)
		skip := q.Offset
		for _, ord := range order {
			if !full.Contains(ord) {
				continue
			}
			if skip > 0 {
				skip--
				continue
			}
			out = append(out, ord)
			if len(out) == q.Limit {
				break
			}
		}
		return out
	}
	// Sparse: sort the set's ranks.
	rs := make([]uint32, 0, n)
	it := full.Iterator()
	for it.HasNext() {
		rs = append(rs, rank[it.Next()])
	}
	slices.Sort(rs)
	rs = rs[min(q.Offset, len(rs)):min(want, len(rs))]
	out := make([]uint32, len(rs))
	for i, r := range rs {
		out[i] = order[r]
	}
	return out
}

// popularity nudges scores towards books that sell: x1 for none, about x1.3 for a
// bestseller (a typo match never overtakes an exact one through it).
func popularity(sales int64) float64 { return 1 + 0.025*math.Log1p(float64(max(sales, 0))) }

type ranked struct {
	ord   uint32
	score float64
	tie   uint32 // rank in the bestselling order
}

// rankBefore reports whether a ranks before b.
func rankBefore(a, b ranked) bool {
	if a.score != b.score {
		return a.score > b.score
	}
	return a.tie < b.tie
}

// rankHeap keeps the worst of the best at its root.
type rankHeap []ranked

func (h rankHeap) Len() int           { return len(h) }
func (h rankHeap) Less(i, j int) bool { return rankBefore(h[j], h[i]) }
func (h rankHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *rankHeap) Push(x any)        { *h = append(*h, x.(ranked)) }
func (h *rankHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func ordsOf(rs []ranked, offset int) []uint32 {
	if offset >= len(rs) {
		return nil
	}
	out := make([]uint32, 0, len(rs)-offset)
	for _, r := range rs[offset:] {
		out = append(out, r.ord)
	}
	return out
}

// ---------------------------------------------------------------------------------------
// Sort orders.

// sortOrders are the live documents in each sort's order (SortRelevance: bestselling)
// and each document's position in them, for one state version.
type sortOrders struct {
	version uint64
	order   [search.SortBestselling + 1][]uint32
	rank    [search.SortBestselling + 1][]uint32 // by ordinal

	// Author facet of every document.
	authorCounts []int32 // by author index
	topAuthors   []search.FacetCount

	// Bands of the price and rating orders, for range filters.
	bands [search.SortBestselling + 1]bands
}

// sortOrders returns the orders of the current state, building them after a write. The
// caller holds ix.mu for reading (so the state cannot change meanwhile).
func (ix *Index) sortOrders(st *state) *sortOrders {
	if so := ix.sorts.Load(); so != nil && so.version == st.version {
		return so
	}
	ix.derivedMu.Lock()
	defer ix.derivedMu.Unlock()
	if so := ix.sorts.Load(); so != nil && so.version == st.version {
		return so
	}
	so := st.buildSortOrders()
	ix.sorts.Store(so)
	return so
}

func (st *state) buildSortOrders() *sortOrders {
	so := &sortOrders{version: st.version}
	live := st.live.ToArray()
	docs := st.docs
	// Every order ends with: best sellers first, then by id.
	tail := func(a, b uint32) int {
		if c := cmp.Compare(docs[b].sales, docs[a].sales); c != 0 {
			return c
		}
		return strings.Compare(string(docs[a].id[:]), string(docs[b].id[:]))
	}
	cmps := [...]func(a, b uint32) int{
		search.SortRelevance: tail,
		search.SortPriceAsc: func(a, b uint32) int {
			if c := cmp.Compare(docs[a].price, docs[b].price); c != 0 {
				return c
			}
			return tail(a, b)
		},
		search.SortPriceDesc: func(a, b uint32) int {
			if c := cmp.Compare(docs[b].price, docs[a].price); c != 0 {
				return c
			}
			return tail(a, b)
		},
		search.SortRating: func(a, b uint32) int {
			if c := cmp.Compare(docs[b].rating, docs[a].rating); c != 0 {
				return c
			}
			if c := cmp.Compare(docs[b].ratingCount, docs[a].ratingCount); c != 0 {
				return c
			}
			return tail(a, b)
		},
		search.SortNewest: func(a, b uint32) int {
			if c := cmp.Compare(docs[b].published, docs[a].published); c != 0 {
				return c
			}
			return tail(a, b)
		},
		search.SortBestselling: tail,
	}
	for s, c := range cmps {
		if s == int(search.SortBestselling) {
			so.order[s] = so.order[search.SortRelevance]
			so.rank[s] = so.rank[search.SortRelevance]
			continue
		}
		order := slices.Clone(live)
		slices.SortFunc(order, c)
		rank := make([]uint32, len(docs))
		for i, ord := range order {
			rank[ord] = uint32(i)
		}
		so.order[s], so.rank[s] = order, rank
	}
	so.bands[search.SortPriceAsc] = newBands(so.order[search.SortPriceAsc])
	so.bands[search.SortRating] = newBands(so.order[search.SortRating])
	c := &counter{n: make([]int32, len(st.authors))}
	for a, fv := range st.authors {
		if n := int32(fv.bm.GetCardinality()); n > 0 {
			c.n[a] = n
			c.touched = append(c.touched, int32(a))
		}
	}
	so.authorCounts = slices.Clone(c.n)
	so.topAuthors = st.topAuthors(so, c, nil)
	return so
}

// ---------------------------------------------------------------------------------------
// Result cache keys and copies.

// queryKey is a canonical encoding of a normalised query.
func queryKey(q *search.Query) string {
	var b strings.Builder
	b.WriteString("s\x00")
	b.WriteString(q.Text)
	b.WriteByte(0)
	for _, c := range q.Filter.Categories {
		b.WriteString(c)
		b.WriteByte(1)
	}
	b.WriteByte(0)
	for _, a := range q.Filter.AuthorIDs {
		b.Write(a[:])
	}
	b.WriteByte(0)
	opt := func(p *int64) {
		if p != nil {
			b.WriteString(strconv.FormatInt(*p, 10))
		} else {
			b.WriteByte('-')
		}
		b.WriteByte(0)
	}
	opt(q.Filter.MinPriceCents)
	opt(q.Filter.MaxPriceCents)
	if q.Filter.MinRating != nil {
		b.WriteString(strconv.FormatFloat(*q.Filter.MinRating, 'g', -1, 64))
	}
	b.WriteByte(0)
	if q.Filter.InStock != nil {
		b.WriteString(strconv.FormatBool(*q.Filter.InStock))
	}
	b.WriteByte(0)
	b.WriteString(q.Filter.Language)
	b.WriteByte(0)
	b.WriteString(strconv.Itoa(int(q.Sort)))
	b.WriteByte(0)
	b.WriteString(strconv.Itoa(q.Limit))
	b.WriteByte(0)
	b.WriteString(strconv.Itoa(q.Offset))
	b.WriteByte(0)
	b.WriteString(strconv.FormatBool(q.SkipFacets))
	b.WriteByte(0)
	for _, id := range q.Exclude {
		b.Write(id[:])
	}
	return b.String()
}

// cloneResult copies a cached result so that callers may modify theirs.
func cloneResult(r *search.Result) search.Result {
	out := *r
	out.Hits = slices.Clone(r.Hits)
	for i := range out.Hits {
		out.Hits[i].Highlights = slices.Clone(out.Hits[i].Highlights)
	}
	f := &out.Facets
	f.Genres = slices.Clone(f.Genres)
	f.Authors = slices.Clone(f.Authors)
	f.Languages = slices.Clone(f.Languages)
	f.Prices = slices.Clone(f.Prices)
	f.Ratings = slices.Clone(f.Ratings)
	return out
}
