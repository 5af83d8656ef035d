package embedded

import (
	"container/heap"
	"context"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/shopfront/bookstore/search"
)

// Suggestions are served from a word index over the titles, author names and category
// names: each normalised word points at the entries (and positions) it occurs in, and a
// sorted vocabulary gives the words starting with what is typed. The entries and
// postings are maintained on every write; the vocabulary is re-sorted lazily when new
// words appear.

// maxSuggestPostings bounds the work of one suggestion (the postings visited).
const maxSuggestPostings = 50_000

type suggestEntry struct {
	kind  search.SuggestionKind
	text  string
	id    string
	words []string
	ref   int32 // document ordinal (titles) or facet index (authors, categories)
	alive bool
}

type wordPost struct {
	entry int32
	pos   int32
}

type suggester struct {
	entries []suggestEntry
	posts   map[string][]wordPost
	title   map[uint32]int32 // document ordinal -> its title entry
	author  map[int32]int32  // author facet -> its entry
	cat     map[int32]int32  // category facet -> its entry
	dead    int
	words   uint64 // bumped when a word is added to posts
}

func newSuggester() *suggester {
	return &suggester{posts: map[string][]wordPost{}, title: map[uint32]int32{}, author: map[int32]int32{}, cat: map[int32]int32{}}
}

// set makes text the entry of (kind, ref), replacing a different previous one.
func (sg *suggester) set(kind search.SuggestionKind, ref int32, text, id string) {
	var refs map[int32]int32
	switch kind {
	case search.SuggestAuthor:
		refs = sg.author
	case search.SuggestCategory:
		refs = sg.cat
	}
	var old int32 = -1
	if kind == search.SuggestTitle {
		if e, ok := sg.title[uint32(ref)]; ok {
			old = e
		}
	} else if e, ok := refs[ref]; ok {
		old = e
	}
	if old >= 0 {
		if e := &sg.entries[old]; e.text == text && e.id == id {
			return
		}
		sg.kill(old)
	}
	e := suggestEntry{kind: kind, text: text, id: id, ref: ref, alive: true, words: strings.Fields(normalizeText(text))}
	if len(e.words) == 0 {
		if kind == search.SuggestTitle {
			delete(sg.title, uint32(ref))
		} else {
			delete(refs, ref)
		}
		return
	}
	idx := int32(len(sg.entries))
	sg.entries = append(sg.entries, e)
	sg.post(idx)
	if kind == search.SuggestTitle {
		sg.title[uint32(ref)] = idx
	} else {
		refs[ref] = idx
	}
}

func (sg *suggester) post(idx int32) {
	for pos, w := range sg.entries[idx].words {
		p, ok := sg.posts[w]
		if !ok {
			sg.words++
		}
		sg.posts[w] = append(p, wordPost{entry: idx, pos: int32(pos)})
	}
}

// removeTitle drops the title entry of a deleted document.
func (sg *suggester) removeTitle(ord uint32) {
	if e, ok := sg.title[ord]; ok {
		sg.kill(e)
		delete(sg.title, ord)
	}
}

func (sg *suggester) kill(idx int32) {
	sg.entries[idx].alive = false
	sg.dead++
	if sg.dead > 1024 && sg.dead > len(sg.entries)/2 {
		sg.compact()
	}
}

// compact rebuilds the entries and postings without the dead entries.
func (sg *suggester) compact() {
	old := sg.entries
	sg.entries = make([]suggestEntry, 0, len(old)-sg.dead)
	sg.posts = make(map[string][]wordPost, len(sg.posts))
	sg.title, sg.author, sg.cat = map[uint32]int32{}, map[int32]int32{}, map[int32]int32{}
	sg.dead = 0
	for _, e := range old {
		if !e.alive {
			continue
		}
		idx := int32(len(sg.entries))
		sg.entries = append(sg.entries, e)
		sg.post(idx)
		switch e.kind {
		case search.SuggestTitle:
			sg.title[uint32(e.ref)] = idx
		case search.SuggestAuthor:
			sg.author[e.ref] = idx
		default:
			sg.cat[e.ref] = idx
		}
	}
	sg.words++ // the vocabulary may have lost words
}

// suggestIndex is the sorted vocabulary of a suggester at one word count.
type suggestIndex struct {
	words uint64
	vocab []string
}

func (ix *Index) suggestVocabulary(sg *suggester) []string {
	if v := ix.suggest.Load(); v != nil && v.words == sg.words {
		return v.vocab
	}
	ix.derivedMu.Lock()
	defer ix.derivedMu.Unlock()
	if v := ix.suggest.Load(); v != nil && v.words == sg.words {
		return v.vocab
	}
	v := &suggestIndex{words: sg.words, vocab: make([]string, 0, len(sg.posts))}
	for w := range sg.posts {
		v.vocab = append(v.vocab, w)
	}
	slices.Sort(v.vocab)
	ix.suggest.Store(v)
	return v.vocab
}

// Suggest implements search.Index: the categories, authors and titles with a run of
// words starting with the typed ones (the last typed word as a prefix unless followed
// by a space), those whose text starts with it first, then the most popular (book
// count for categories, sales for authors and titles).
func (ix *Index) Suggest(ctx context.Context, prefix string, n int) ([]search.Suggestion, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if ix.closed.Load() {
		return nil, search.ErrClosed
	}
	n = search.SuggestLimit(n)
	prefix = search.Truncate(prefix)
	key := "g\x00" + strconv.Itoa(n) + "\x00" + prefix
	if v, ok := ix.cache.get(key); ok {
		return slices.Clone(v.([]search.Suggestion)), nil
	}
	var words []string
	lastEnd := 0
	tokenize(prefix, func(term []byte, _, end int) {
		words = append(words, string(term))
		lastEnd = end
	})
	if len(words) == 0 {
		return nil, nil
	}
	if len(words) > maxQueryWords {
		words = words[len(words)-maxQueryWords:]
	}
	open := lastEnd == len(prefix) // the last word may continue

	ix.mu.RLock()
	defer ix.mu.RUnlock()
	if ix.closed.Load() {
		return nil, search.ErrClosed
	}
	st := ix.st
	sg := st.sg
	vocab := ix.suggestVocabulary(sg)
	last := words[len(words)-1]
	lead := words[:len(words)-1]
	lo := sort.SearchStrings(vocab, last)
	hi := lo
	for hi < len(vocab) && (vocab[hi] == last || open && strings.HasPrefix(vocab[hi], last)) {
		hi++
	}

	// Two passes over the postings of the matching words: matches at the start of a
	// text first (they rank first), then the others; each kind keeps its best 2n in a
	// bounded heap, and an entry is taken once.
	seen := make([]uint64, (len(sg.entries)+63)/64)
	heaps := map[search.SuggestionKind]*candHeap{}
	visited := 0
	for pass := 0; pass < 2; pass++ {
	scan:
		for _, w := range vocab[lo:hi] {
			for _, p := range sg.posts[w] {
				k := int(p.pos) - len(lead)
				if (k == 0) != (pass == 0) || k < 0 {
					continue
				}
				if visited++; visited > maxSuggestPostings {
					break scan
				}
				if seen[p.entry/64]&(1<<(p.entry%64)) != 0 {
					continue
				}
				e := &sg.entries[p.entry]
				if !e.alive || !slices.Equal(e.words[k:p.pos], lead) {
					continue
				}
				c := suggestCand{entry: p.entry, start: k == 0, text: e.text, id: e.id}
				switch e.kind {
				case search.SuggestTitle:
					c.pop = st.docs[e.ref].sales
				case search.SuggestAuthor:
					if a := st.authors[e.ref]; !a.bm.IsEmpty() {
						c.pop = a.sales + 1 // 0: no books left
					}
				default:
					c.pop = int64(st.cats[e.ref].bm.GetCardinality())
				}
				if c.pop == 0 && e.kind != search.SuggestTitle {
					continue // no books left
				}
				seen[p.entry/64] |= 1 << (p.entry % 64)
				h := heaps[e.kind]
				if h == nil {
					h = &candHeap{}
					heaps[e.kind] = h
				}
				if h.Len() < 2*n {
					heap.Push(h, c)
				} else if candBefore(c, (*h)[0]) {
					(*h)[0] = c
					heap.Fix(h, 0)
				}
			}
		}
	}
	lists := map[search.SuggestionKind][]search.Suggestion{}
	for kind, h := range heaps {
		out := make([]search.Suggestion, h.Len())
		for i := len(out) - 1; i >= 0; i-- {
			c := heap.Pop(h).(suggestCand)
			out[i] = search.Suggestion{Kind: kind, Text: c.text, ID: c.id}
		}
		lists[kind] = out
	}
	res := search.MergeSuggestions(lists[search.SuggestCategory], lists[search.SuggestAuthor], lists[search.SuggestTitle], n)
	ix.cache.put(key, res)
	return slices.Clone(res), nil
}

type suggestCand struct {
	entry    int32
	start    bool
	pop      int64
	text, id string
}

// candBefore orders suggestions: those starting with the typed words, then the most
// popular, then by text and id.
func candBefore(a, b suggestCand) bool {
	if a.start != b.start {
		return a.start
	}
	if a.pop != b.pop {
		return a.pop > b.pop
	}
	if a.text != b.text {
		return a.text < b.text
	}
	return a.id < b.id
}

// candHeap keeps the worst of the best at its root.
type candHeap []suggestCand

func (h candHeap) Len() int           { return len(h) }
func (h candHeap) Less(i, j int) bool { return candBefore(h[j], h[i]) }
func (h candHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *candHeap) Push(x any)        { *h = append(*h, x.(suggestCand)) }
func (h *candHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
