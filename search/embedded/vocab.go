package embedded

import (
	"slices"
	"sort"
	"strings"
	"unicode/utf8"
)

// The vocabulary is every term of the text fields, sorted, with the number of documents
// containing it. Expanding a query word (prefix completions, typos) walks it in memory
// instead of Bleve's per-segment, per-field term dictionaries, and the typo walk is a
// banded edit-distance computation over the implicit trie of the sorted terms: rows are
// shared by terms with a common prefix and whole subtrees are skipped as soon as no
// completion can come within the allowed distance. (Bleve's own fuzzy lookup builds a
// Levenshtein DFA per query word, which costs 40 µs for one typo and 250-500 µs for
// two, before walking each segment's dictionary of each field.)
//
// The counts are the state's, read live (the caller holds ix.mu for reading): they
// follow every write and rank expansions, they do not decide matches. Terms no live
// document has any more count 0 and are skipped until compactTerms drops them.

type vocabulary struct {
	st    *state
	added uint64 // st.termsAdded when built
	terms []string
	ids   []int32 // term ids in st, parallel to terms
}

// vocabulary returns the sorted vocabulary of the current state, rebuilding it after
// new terms appeared. The caller holds ix.mu for reading.
func (ix *Index) vocabulary(st *state) *vocabulary {
	if v := ix.vocab.Load(); v != nil && v.st == st && v.added == st.termsAdded {
		return v
	}
	ix.derivedMu.Lock()
	defer ix.derivedMu.Unlock()
	if v := ix.vocab.Load(); v != nil && v.st == st && v.added == st.termsAdded {
		return v
	}
	// Dead terms stay in (a term may live again without a new id); compactTerms
	// drops them when they are many.
	v := &vocabulary{st: st, added: st.termsAdded, terms: slices.Clone(st.termStr)}
	slices.Sort(v.terms)
	v.ids = make([]int32, len(v.terms))
	for i, t := range v.terms {
		v.ids[i] = st.termID[t]
	}
	ix.vocab.Store(v)
	return v
}

// docs returns the number of live documents having term i, in any text field.
func (v *vocabulary) docs(i int) int32 { return v.st.termStat[v.ids[i]].docs }

// inField returns the number of live documents having term i in text field f.
func (v *vocabulary) inField(i, f int) int32 { return v.st.termStat[v.ids[i]].field[f] }

// prefixRange returns the indexes [lo, hi) of the terms starting with p.
func (v *vocabulary) prefixRange(p string) (int, int) {
	lo := sort.SearchStrings(v.terms, p)
	hi := lo + sort.Search(len(v.terms)-lo, func(i int) bool { return !strings.HasPrefix(v.terms[lo+i], p) })
	return lo, hi
}

// maxFuzzyHits bounds the terms one fuzzy walk reports.
const maxFuzzyHits = 4096

// fuzzy calls fn with the index and distance of every term of v.terms[lo:hi] within
// optimal-string-alignment distance d of w (an adjacent transposition is one edit),
// distances counted in letters (runes) of the normalised terms. With prefix, it also
// reports the terms that have a prefix within distance d of w (completions of a word
// typed with a typo, completion true), with the distance of the shortest such prefix.
// d is 1 or 2.
func (v *vocabulary) fuzzy(w string, d int, prefix bool, lo, hi int, fn func(i, dist int, completion bool)) {
	var wbuf [maxTermLen]rune
	wr := appendRunes(wbuf[:0], w)
	m := len(wr)
	if d < 1 || d > 2 || m == 0 || m > maxTermLen {
		return
	}
	const band = 5 // 2*d+1 for d <= 2
	width := 2*d + 1
	inf := uint8(d + 1)
	maxDepth := m + d
	// Row k holds the cells (k, j) for j = k-d .. k+d at rows[k*band+j-k+d]; cells
	// outside 0..m hold inf.
	rows := make([]uint8, (maxDepth+1)*band)
	for idx := range width {
		j := idx - d
		rows[idx] = inf
		if j >= 0 && j <= m && j <= d {
			rows[idx] = uint8(j)
		}
	}
	// The letters of the current term down to the depth reached, and the byte offset
	// after each: off[k] is where letter k+1 starts.
	tr := make([]rune, maxDepth+1)
	off := make([]int, maxDepth+2)
	hits := 0
	terms := v.terms[:hi]
	prev, valid := "", 0
	for i := lo; i < hi; {
		t := terms[i]
		// Rows stay valid for the letters t shares with the previous term.
		cp := commonPrefix(prev, t)
		k := valid
		for k > 0 && off[k] > cp {
			k--
		}
		skip := -1
		for off[k] < len(t) && k < maxDepth {
			r, n := utf8.DecodeRuneInString(t[off[k]:])
			tr[k], off[k+1] = r, off[k]+n
			k++
			// Fill row k.
			c := r
			base, up, up2 := k*band, (k-1)*band, (k-2)*band
			rowMin := inf
			for idx := 0; idx < width; idx++ {
				j := idx + k - d
				val := inf
				switch {
				case j < 0 || j > m:
				case j == 0:
					val = min(uint8(k), inf)
				default:
					// (k-1, j) is at index idx+1 of row k-1, (k-1, j-1) at idx.
					if idx+1 < width {
						val = rows[up+idx+1] + 1
					}
					if idx > 0 {
						val = min(val, rows[base+idx-1]+1)
					}
					diag := rows[up+idx]
					if c != wr[j-1] {
						diag++
					}
					val = min(val, diag)
					// Transposition: (k-2, j-2) is at index idx of row k-2.
					if k >= 2 && j >= 2 && c == wr[j-2] && tr[k-2] == wr[j-1] {
						val = min(val, rows[up2+idx]+1)
					}
					val = min(val, inf)
				}
				rows[base+idx] = val
				rowMin = min(rowMin, val)
			}
			// The distance of t[:k] to the whole of w is cell (k, m).
			dist := inf
			if e := m - k + d; e >= 0 && e < width {
				dist = rows[base+e]
			}
			if prefix && dist < inf {
				// Every term starting with t[:k] completes a near miss of w.
				end := i + prefixLen(terms[i:], t[:off[k]])
				for x := i; x < end; x++ {
					// A completion within reach as a whole word is a plain typo.
					if full := osaWithin(w, terms[x], d); full <= d {
						fn(x, full, false)
					} else {
						fn(x, int(dist), true)
					}
					if hits++; hits >= maxFuzzyHits {
						return
					}
				}
				skip = end
				break
			}
			if rowMin >= inf {
				skip = i + prefixLen(terms[i:], t[:off[k]])
				break
			}
			if off[k] == len(t) && dist < inf {
				fn(i, int(dist), false)
				if hits++; hits >= maxFuzzyHits {
					return
				}
			}
		}
		prev, valid = t, k
		switch {
		case skip >= 0:
			i = skip
		case off[k] == len(t):
			i++
		default:
			// Depth limit: nothing longer than t[:k] is within reach.
			i += prefixLen(terms[i:], t[:off[k]])
		}
	}
}

// appendRunes appends the letters of s to dst.
func appendRunes(dst []rune, s string) []rune {
	for _, r := range s {
		dst = append(dst, r)
	}
	return dst
}

// prefixLen returns the number of leading terms of sorted that start with p, galloping
// from the front (the runs skipped are usually short).
func prefixLen(sorted []string, p string) int {
	n := 1
	for n < len(sorted) && strings.HasPrefix(sorted[n], p) {
		n *= 2
	}
	lo := n / 2
	hi := min(n, len(sorted))
	return lo + sort.Search(hi-lo, func(i int) bool { return !strings.HasPrefix(sorted[lo+i], p) })
}

// osaWithin returns the optimal-string-alignment distance between a and b (letters),
// or max+1 when it exceeds max.
func osaWithin(as, bs string, max int) int {
	var abuf, bbuf [maxTermLen]rune
	a, b := appendRunes(abuf[:0], as), appendRunes(bbuf[:0], bs)
	if d := len(a) - len(b); d > max || -d > max {
		return max + 1
	}
	var buf [3][maxTermLen + 1]int
	prev2, prev, cur := buf[0][:len(b)+1], buf[1][:len(b)+1], buf[2][:len(b)+1]
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		rowMin := i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			v := min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				v = min(v, prev2[j-2]+1)
			}
			cur[j] = v
			rowMin = min(rowMin, v)
		}
		if rowMin > max {
			return max + 1
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return min(prev[len(b)], max+1)
}

func commonPrefix(a, b string) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}
