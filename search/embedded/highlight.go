package embedded

import (
	"html"
	"strings"

	"github.com/shopfront/bookstore/search"
)

// Description snippets keep about cropWords words, starting cropLead words before the
// first match.
const (
	cropWords = 30
	cropLead  = 8
)

// highlights returns the Highlights of one hit. The description is read from Bleve's
// stored fields, only when it would show a matching word the title and authors do not.
func (ix *Index) highlights(st *state, ord uint32, ms *matchSet) []search.Highlight {
	d := &st.docs[ord]
	var out []search.Highlight
	covered := map[string]bool{} // matched terms shown in title or authors
	if s, ok := markText(d.title, ms.terms, covered, false); ok {
		out = append(out, search.Highlight{Field: "title", Snippet: s})
	}
	if s, ok := markText(strings.Join(d.authors, ", "), ms.terms, covered, false); ok {
		out = append(out, search.Highlight{Field: "authors", Snippet: s})
	}
	if ms.mask(ord)&(1<<fieldDescription) == 0 {
		return out
	}
	if allWordsCovered(ms, covered) {
		return out // the description would show nothing new
	}
	desc, ok := ms.oc.description(ms.docnum(ord), d.id.String())
	if !ok {
		return out
	}
	extra := map[string]bool{}
	if s, ok := markText(desc, ms.terms, extra, true); ok {
		for t := range extra {
			if !covered[t] {
				out = append(out, search.Highlight{Field: "description", Snippet: s})
				break
			}
		}
	}
	return out
}

// allWordsCovered reports whether every query word has one of its terms in covered.
func allWordsCovered(ms *matchSet, covered map[string]bool) bool {
	for _, terms := range ms.wordTerms {
		ok := false
		for t := range terms {
			if covered[t] {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// markText returns text HTML-escaped with the words whose term is in terms wrapped in
// <mark>, and whether any was; the matched terms are added to seen. With crop, the text
// is cut to about cropWords words around the first match.
func markText(text string, terms map[string]bool, seen map[string]bool, crop bool) (string, bool) {
	if !crop {
		// One pass: escape the text between marked words.
		var b strings.Builder
		pos, marked := 0, false
		tokenize(text, func(term []byte, start, end int) {
			if !terms[string(term)] {
				return
			}
			if !marked {
				b.Grow(len(text) + 32)
				marked = true
			}
			seen[string(term)] = true
			b.WriteString(html.EscapeString(text[pos:start]))
			b.WriteString(search.MarkStart)
			b.WriteString(html.EscapeString(text[start:end]))
			b.WriteString(search.MarkEnd)
			pos = end
		})
		if !marked {
			return "", false
		}
		b.WriteString(html.EscapeString(text[pos:]))
		return b.String(), true
	}
	type tok struct {
		start, end int
		hit        bool
	}
	var toks []tok
	first := -1
	tokenize(text, func(term []byte, start, end int) {
		hit := terms[string(term)]
		if hit {
			seen[string(term)] = true
			if first < 0 {
				first = len(toks)
			}
		}
		toks = append(toks, tok{start, end, hit})
	})
	if first < 0 {
		return "", false
	}
	from, to := 0, len(toks)
	if crop && len(toks) > cropWords {
		from = max(0, min(first-cropLead, len(toks)-cropWords))
		to = from + cropWords
	}
	var b strings.Builder
	pos := 0
	if from > 0 {
		b.WriteString(search.Ellipsis)
		pos = toks[from].start
	}
	for _, t := range toks[from:to] {
		if !t.hit {
			continue
		}
		b.WriteString(html.EscapeString(text[pos:t.start]))
		b.WriteString(search.MarkStart)
		b.WriteString(html.EscapeString(text[t.start:t.end]))
		b.WriteString(search.MarkEnd)
		pos = t.end
	}
	if to < len(toks) {
		b.WriteString(html.EscapeString(text[pos:toks[to-1].end]))
		b.WriteString(search.Ellipsis)
	} else {
		b.WriteString(html.EscapeString(text[pos:]))
	}
	return b.String(), true
}
