package meilitest

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// searchParams are the documented search parameters (those the fake implements and
// those it accepts and ignores).
type searchParams struct {
	IndexUID                *string          `json:"indexUid"`
	Q                       *string          `json:"q"`
	Offset                  *int             `json:"offset"`
	Limit                   *int             `json:"limit"`
	Page                    *int             `json:"page"`
	HitsPerPage             *int             `json:"hitsPerPage"`
	Filter                  any              `json:"filter"`
	Facets                  []string         `json:"facets"`
	Sort                    []string         `json:"sort"`
	AttributesToRetrieve    []string         `json:"attributesToRetrieve"`
	AttributesToSearchOn    []string         `json:"attributesToSearchOn"`
	AttributesToHighlight   []string         `json:"attributesToHighlight"`
	AttributesToCrop        []string         `json:"attributesToCrop"`
	CropLength              *int             `json:"cropLength"`
	CropMarker              *string          `json:"cropMarker"`
	HighlightPreTag         *string          `json:"highlightPreTag"`
	HighlightPostTag        *string          `json:"highlightPostTag"`
	MatchingStrategy        *string          `json:"matchingStrategy"`
	ShowMatchesPosition     *bool            `json:"showMatchesPosition"`
	ShowRankingScore        *bool            `json:"showRankingScore"`
	ShowRankingScoreDetails *bool            `json:"showRankingScoreDetails"`
	ShowPerformanceDetails  *bool            `json:"showPerformanceDetails"`
	RankingScoreThreshold   *float64         `json:"rankingScoreThreshold"`
	Distinct                *string          `json:"distinct"`
	Locales                 []string         `json:"locales"`
	Hybrid                  *json.RawMessage `json:"hybrid"`
	Vector                  *json.RawMessage `json:"vector"`
	RetrieveVectors         *bool            `json:"retrieveVectors"`
	Media                   *json.RawMessage `json:"media"`
	FederationOptions       *json.RawMessage `json:"federationOptions"`
}

func decodeSearch(body []byte, p *searchParams, multi bool) *apiError {
	if e := decodeStrict(body, p, "bad_request"); e != nil {
		return e
	}
	if !multi && p.IndexUID != nil {
		return errorf(http.StatusBadRequest, "bad_request", "Unknown field `indexUid`")
	}
	if p.Hybrid != nil && string(*p.Hybrid) != "null" {
		return errorf(http.StatusBadRequest, "invalid_search_hybrid_query", "hybrid search is not supported by this fake")
	}
	if p.FederationOptions != nil && string(*p.FederationOptions) != "null" {
		return errorf(http.StatusBadRequest, "invalid_multi_search_federation_options", "federation is not supported by this fake")
	}
	for name, v := range map[string]*int{"offset": p.Offset, "limit": p.Limit, "hitsPerPage": p.HitsPerPage, "cropLength": p.CropLength} {
		if v != nil && *v < 0 {
			return errorf(http.StatusBadRequest, "invalid_search_"+snake(name), "Invalid value type at `.%s`: expected a positive integer, but found a negative integer: `%d`", name, *v)
		}
	}
	if p.Page != nil && *p.Page < 0 {
		return errorf(http.StatusBadRequest, "invalid_search_page", "Invalid value type at `.page`: expected a positive integer, but found a negative integer: `%d`", *p.Page)
	}
	if p.MatchingStrategy != nil {
		switch *p.MatchingStrategy {
		case "last", "all", "frequency":
		default:
			return errorf(http.StatusBadRequest, "invalid_search_matching_strategy", "Unknown value `%s` at `.matchingStrategy`: expected one of `last`, `all`, `frequency`", *p.MatchingStrategy)
		}
	}
	return nil
}

func snake(s string) string {
	var b strings.Builder
	for _, r := range s {
		if unicode.IsUpper(r) {
			b.WriteByte('_')
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (s *Server) multiSearch(body []byte) (int, any, *apiError) {
	var req struct {
		Queries    []json.RawMessage `json:"queries"`
		Federation *json.RawMessage  `json:"federation"`
	}
	if e := decodeStrict(body, &req, "bad_request"); e != nil {
		return 0, nil, e
	}
	if req.Federation != nil && string(*req.Federation) != "null" {
		return 0, nil, errorf(http.StatusBadRequest, "invalid_multi_search_federated", "federated search is not supported by this fake")
	}
	if req.Queries == nil {
		return 0, nil, errorf(http.StatusBadRequest, "missing_multi_search_queries", "Missing field `queries`")
	}
	results := make([]any, 0, len(req.Queries))
	for i, raw := range req.Queries {
		inside := func(e *apiError) *apiError {
			e.Message = fmt.Sprintf("Inside `.queries[%d]`: %s", i, e.Message)
			return e
		}
		var p searchParams
		if e := decodeSearch(raw, &p, true); e != nil {
			return 0, nil, inside(e)
		}
		if p.IndexUID == nil {
			return 0, nil, inside(errorf(http.StatusBadRequest, "missing_index_uid", "Missing field `indexUid`"))
		}
		ix := s.indexes[*p.IndexUID]
		if ix == nil {
			return 0, nil, inside(errorf(http.StatusNotFound, "index_not_found", "Index `%s` not found.", *p.IndexUID))
		}
		res, e := ix.search(&p)
		if e != nil {
			return 0, nil, inside(e)
		}
		res["indexUid"] = *p.IndexUID
		results = append(results, res)
	}
	return http.StatusOK, map[string]any{"results": results}, nil
}

// ---------------------------------------------------------------------------------------
// Text analysis.

type token struct {
	term       string
	start, end int // byte range in the text
}

// tokens splits text into normalised words: letters and digits (anything else, an
// apostrophe too, separates), lower-cased and without accents.
func tokens(text string) []token {
	var out []token
	i := 0
	for i < len(text) {
		r, n := utf8.DecodeRuneInString(text[i:])
		if !isWord(r) {
			i += n
			continue
		}
		start, end := i, i
		for i < len(text) {
			r, n = utf8.DecodeRuneInString(text[i:])
			if isWord(r) {
				i += n
				end = i
				continue
			}
			break
		}
		out = append(out, token{term: fold(text[start:end]), start: start, end: end})
	}
	return out
}

func isWord(r rune) bool {
	return r != utf8.RuneError && (unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.In(r, unicode.Mn, unicode.Mc))
}

var specialFold = map[rune]string{'ß': "ss", 'æ': "ae", 'œ': "oe", 'ø': "o", 'ł': "l", 'đ': "d", 'ð': "d", 'þ': "th", 'ı': "i", 'ħ': "h"}

// fold is charabia's normalisation: compatibility decomposition (full-width letters,
// ligatures), lower case, no accents.
func fold(w string) string {
	var b strings.Builder
	for _, r := range norm.NFKD.String(w) {
		r = unicode.ToLower(r)
		switch {
		case unicode.In(r, unicode.Mn, unicode.Mc):
		case specialFold[r] != "":
			b.WriteString(specialFold[r])
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// queryWord is one word of q.
type queryWord struct {
	term   string
	prefix bool // the last word, not followed by a space
	phrase int  // phrase number (0: not in a phrase)
}

// negation is an excluded word or phrase: its terms, in order.
type negation []string

// negates reports whether a "-" just before s[pos] is Meilisearch's negative operator
// (1.8+): it must start the query or follow a space. first: s starts the query.
func negates(s string, pos int, first bool) bool {
	if pos < 1 || s[pos-1] != '-' {
		return false
	}
	if pos == 1 {
		return first
	}
	r, _ := utf8.DecodeLastRuneInString(s[:pos-1])
	return unicode.IsSpace(r)
}

// parseQuery splits q into its words and its negations: a word or a phrase in quotes
// right after a "-" that starts the query or follows a space excludes the documents
// having it (exactly: no typos, no prefix) and is not matched.
func parseQuery(q string) ([]queryWord, []negation) {
	var out []queryWord
	var negs []negation
	phrase, inPhrase := 0, false
	segs := strings.Split(q, `"`)
	for i, seg := range segs {
		inPhrase = i%2 == 1 && i < len(segs)-1
		if inPhrase {
			phrase++
			if negates(segs[i-1], len(segs[i-1]), i == 1) {
				var n negation
				for _, t := range tokens(seg) {
					n = append(n, t.term)
				}
				if len(n) > 0 {
					negs = append(negs, n)
				}
				continue
			}
		}
		for _, t := range tokens(seg) {
			if !inPhrase && negates(seg, t.start, i == 0) {
				negs = append(negs, negation{t.term})
				continue
			}
			w := queryWord{term: t.term}
			if inPhrase {
				w.phrase = phrase
			}
			out = append(out, w)
		}
	}
	if len(out) > 10 {
		out = out[:10] // Meilisearch reads the first ten words
	}
	if n := len(out); n > 0 && out[n-1].phrase == 0 {
		trimmed := strings.TrimRightFunc(q, unicode.IsSpace)
		if len(trimmed) == len(q) {
			if r, _ := utf8.DecodeLastRuneInString(q); isWord(r) && !endsNegated(q) {
				out[n-1].prefix = true
			}
		}
	}
	return out, negs
}

// endsNegated reports whether the last word of q is a negation.
func endsNegated(q string) bool {
	i := strings.LastIndexFunc(q, func(r rune) bool { return !isWord(r) })
	return i >= 0 && negates(q, i+1, !strings.Contains(q[:i+1], `"`))
}

// excluded reports whether the document has one of the negations in a searched attribute.
func (ix *index) excluded(doc map[string]any, negs []negation, on []string) bool {
	for _, attr := range ix.searchedAttributes(doc, on) {
		for _, text := range attrTexts(doc[attr]) {
			toks := tokens(text)
			for _, n := range negs {
				for ti := range toks {
					k := 0
					for k < len(n) && ti+k < len(toks) && toks[ti+k].term == n[k] {
						k++
					}
					if k == len(n) {
						return true
					}
				}
			}
		}
	}
	return false
}

// osa is the optimal string alignment distance between two terms (runes).
func osa(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

// ---------------------------------------------------------------------------------------
// Matching and ranking.

// wordMatch is how a query word matched a document.
type wordMatch struct {
	ok     bool
	typos  int
	exact  bool
	attr   int // index in the searched attributes
	prefix int // for prefix matches, the matched length of the token (bytes), else 0
}

// allowedTypos is the typo budget of a word in an attribute.
func (ix *index) allowedTypos(term, attr string) int {
	tt := ix.settings.TypoTolerance
	if !tt.Enabled || slices.Contains(tt.DisableOnAttributes, attr) || slices.Contains(tt.DisableOnWords, term) {
		return 0
	}
	if tt.DisableOnNumbers && isNumber(term) {
		return 0
	}
	switch n := utf8.RuneCountInString(term); {
	case n >= tt.MinWordSizeForTypos.TwoTypos:
		return 2
	case n >= tt.MinWordSizeForTypos.OneTypo:
		return 1
	}
	return 0
}

func isNumber(s string) bool {
	_, err := strconv.ParseFloat(s, 64)
	return err == nil
}

// matchToken reports whether a query word matches a document token.
func matchToken(w queryWord, tok string, typos int) (bool, int, bool) {
	if tok == w.term {
		return true, 0, true
	}
	if w.phrase > 0 {
		return false, 0, false
	}
	if w.prefix && strings.HasPrefix(tok, w.term) {
		return true, 0, false
	}
	if typos == 0 {
		return false, 0, false
	}
	if d := osa(w.term, tok); d <= typos {
		return true, d, false
	}
	if w.prefix {
		// A prefix of the token within the typo budget.
		rs := []rune(tok)
		for k := max(1, utf8.RuneCountInString(w.term)-typos); k <= min(len(rs), utf8.RuneCountInString(w.term)+typos); k++ {
			if d := osa(w.term, string(rs[:k])); d <= typos {
				return true, d, false
			}
		}
	}
	return false, 0, false
}

// attrTexts returns the strings of an attribute's value.
func attrTexts(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case float64:
		return []string{strconv.FormatFloat(x, 'f', -1, 64)}
	case bool:
		return []string{strconv.FormatBool(x)}
	case []any:
		var out []string
		for _, e := range x {
			out = append(out, attrTexts(e)...)
		}
		return out
	}
	return nil
}

// searchedAttributes returns the attributes q searches, in ranking order.
func (ix *index) searchedAttributes(doc map[string]any, on []string) []string {
	attrs := ix.settings.SearchableAttributes
	if len(attrs) == 1 && attrs[0] == "*" {
		attrs = sortedKeys(doc)
	}
	if len(on) > 0 {
		var out []string
		for _, a := range attrs {
			if slices.Contains(on, a) {
				out = append(out, a)
			}
		}
		return out
	}
	return attrs
}

// matchDoc matches the query words against a document.
func (ix *index) matchDoc(doc map[string]any, words []queryWord, on []string) []wordMatch {
	out := make([]wordMatch, len(words))
	attrs := ix.searchedAttributes(doc, on)
	for ai, attr := range attrs {
		for _, text := range attrTexts(doc[attr]) {
			toks := tokens(text)
			for wi, w := range words {
				budget := ix.allowedTypos(w.term, attr)
				for ti, tok := range toks {
					ok, typos, exact := matchToken(w, tok.term, budget)
					if !ok {
						continue
					}
					if w.phrase > 0 && !phraseAt(words, wi, toks, ti) {
						continue
					}
					m := wordMatch{ok: true, typos: typos, exact: exact, attr: ai}
					if best := out[wi]; !best.ok || m.typos < best.typos || m.typos == best.typos && (m.exact && !best.exact || m.exact == best.exact && m.attr < best.attr) {
						out[wi] = m
					}
				}
			}
		}
	}
	return out
}

// phraseAt reports whether the phrase of words[wi] occurs in toks with words[wi] at ti.
func phraseAt(words []queryWord, wi int, toks []token, ti int) bool {
	p := words[wi].phrase
	first := wi
	for first > 0 && words[first-1].phrase == p {
		first--
	}
	start := ti - (wi - first)
	if start < 0 {
		return false
	}
	for k := first; k < len(words) && words[k].phrase == p; k++ {
		j := start + k - first
		if j >= len(toks) || toks[j].term != words[k].term {
			return false
		}
	}
	return true
}

type candidate struct {
	id      string
	doc     map[string]any
	matches []wordMatch
	words   int // query words matched
}

// search runs a search request against the index.
func (ix *index) search(p *searchParams) (map[string]any, *apiError) {
	filterable, sortable := ix.filterable(), ix.sortable()
	flt, err := parseFilter(p.Filter, filterable)
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "invalid_search_filter", "%s", err.Error())
	}
	for _, f := range p.Facets {
		if f != "*" && !filterable[f] {
			return nil, errorf(http.StatusBadRequest, "invalid_search_facets", "Invalid facet distribution, attribute `%s` is not filterable. The available filterable attributes are `%s`.", f, strings.Join(sortedKeys(filterable), ", "))
		}
	}
	type sortKey struct {
		attr string
		desc bool
	}
	var sorts []sortKey
	for _, s := range p.Sort {
		attr, dir, ok := strings.Cut(s, ":")
		if !ok || dir != "asc" && dir != "desc" {
			return nil, errorf(http.StatusBadRequest, "invalid_search_sort", "Invalid syntax for the sort parameter: expected expression ending by `:asc` or `:desc`, found `%s`.", s)
		}
		if !sortable[attr] {
			return nil, errorf(http.StatusBadRequest, "invalid_search_sort", "Attribute `%s` is not sortable. Available sortable attributes are: `%s`.", attr, strings.Join(sortedKeys(sortable), ", "))
		}
		if !slices.Contains(ix.settings.RankingRules, "sort") {
			return nil, errorf(http.StatusBadRequest, "invalid_search_sort", "You must specify where `sort` is listed in the rankingRules setting to use the sort parameter at search time.")
		}
		sorts = append(sorts, sortKey{attr, dir == "desc"})
	}
	searchable := ix.settings.SearchableAttributes
	for _, a := range p.AttributesToSearchOn {
		if !(len(searchable) == 1 && searchable[0] == "*") && !slices.Contains(searchable, a) {
			return nil, errorf(http.StatusBadRequest, "invalid_search_attributes_to_search_on", "Attribute `%s` is not searchable. Available searchable attributes are: `%s`.", a, strings.Join(searchable, ", "))
		}
	}
	q := ""
	if p.Q != nil {
		q = *p.Q
	}
	words, negs := parseQuery(q)
	strategy := "last"
	if p.MatchingStrategy != nil {
		strategy = *p.MatchingStrategy
	}

	var cands []candidate
	for id, doc := range ix.docs {
		if flt != nil && !flt.eval(doc) {
			continue
		}
		c := candidate{id: id, doc: doc}
		if len(negs) > 0 && ix.excluded(doc, negs, p.AttributesToSearchOn) {
			continue
		}
		if len(words) > 0 {
			c.matches = ix.matchDoc(doc, words, p.AttributesToSearchOn)
			if strategy == "all" {
				for _, m := range c.matches {
					if !m.ok {
						goto next
					}
				}
				c.words = len(words)
			} else {
				// "last": the leading words that all match; at least the first.
				for _, m := range c.matches {
					if !m.ok {
						break
					}
					c.words++
				}
				if c.words == 0 {
					goto next
				}
			}
		}
		cands = append(cands, c)
	next:
	}
	// Rank.
	cmpSort := func(a, b candidate) int {
		for _, s := range sorts {
			if c := compareValues(a.doc[s.attr], b.doc[s.attr], s.desc); c != 0 {
				return c
			}
		}
		return 0
	}
	slices.SortFunc(cands, func(a, b candidate) int {
		for _, rule := range ix.settings.RankingRules {
			var c int
			switch rule {
			case "words":
				c = b.words - a.words
			case "typo":
				c = sumTypos(a.matches) - sumTypos(b.matches)
			case "attribute", "attributeRank":
				c = sumAttr(a.matches) - sumAttr(b.matches)
			case "exactness":
				c = countExact(b.matches) - countExact(a.matches)
			case "sort":
				c = cmpSort(a, b)
			case "proximity", "wordPosition":
			default:
				if attr, dir, ok := strings.Cut(rule, ":"); ok {
					c = compareValues(a.doc[attr], b.doc[attr], dir == "desc")
				}
			}
			if c != 0 {
				return c
			}
		}
		return int(ix.order[a.id] - ix.order[b.id])
	})

	maxTotal := ix.settings.Pagination.MaxTotalHits
	total := len(cands)
	capped := cands[:min(total, maxTotal)]
	res := map[string]any{"query": q, "processingTimeMs": 0}
	var page []candidate
	if p.Page != nil || p.HitsPerPage != nil {
		hpp, pg := 20, 1
		if p.HitsPerPage != nil {
			hpp = *p.HitsPerPage
		}
		if p.Page != nil {
			pg = *p.Page
		}
		if pg > 0 && hpp > 0 {
			from := min((pg-1)*hpp, len(capped))
			page = capped[from:min(from+hpp, len(capped))]
		}
		totalPages := 0
		if hpp > 0 {
			totalPages = (len(capped) + hpp - 1) / hpp
		}
		res["hitsPerPage"], res["page"], res["totalPages"], res["totalHits"] = hpp, pg, totalPages, len(capped)
	} else {
		off, lim := 0, 20
		if p.Offset != nil {
			off = *p.Offset
		}
		if p.Limit != nil {
			lim = *p.Limit
		}
		from := min(off, len(capped))
		page = capped[from:min(from+lim, len(capped))]
		res["offset"], res["limit"], res["estimatedTotalHits"] = off, lim, len(capped)
	}
	hits := make([]map[string]any, 0, len(page))
	for _, c := range page {
		hits = append(hits, ix.formatHit(c, words, p))
	}
	res["hits"] = hits

	if len(p.Facets) > 0 {
		dist := map[string]map[string]int{}
		stats := map[string]map[string]float64{}
		attrs := p.Facets
		if slices.Contains(attrs, "*") {
			attrs = sortedKeys(filterable)
		}
		for _, attr := range attrs {
			counts := map[string]int{}
			lo, hi, numeric := math.Inf(1), math.Inf(-1), false
			for _, c := range cands {
				seen := map[string]bool{}
				for _, v := range flatten(c.doc[attr]) {
					key := facetKey(v)
					if key == "" || seen[strings.ToLower(key)] {
						continue
					}
					seen[strings.ToLower(key)] = true
					counts[key]++
					if f, ok := v.(float64); ok {
						lo, hi, numeric = math.Min(lo, f), math.Max(hi, f), true
					}
				}
			}
			dist[attr] = ix.limitFacet(attr, counts)
			if numeric {
				stats[attr] = map[string]float64{"min": lo, "max": hi}
			}
		}
		res["facetDistribution"] = dist
		res["facetStats"] = stats
	}
	return res, nil
}

func flatten(v any) []any {
	if arr, ok := v.([]any); ok {
		return arr
	}
	if v == nil {
		return nil
	}
	return []any{v}
}

func facetKey(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	}
	return ""
}

// limitFacet keeps maxValuesPerFacet values, in the configured order.
func (ix *index) limitFacet(attr string, counts map[string]int) map[string]int {
	by := ix.settings.Faceting.SortFacetValuesBy[attr]
	if by == "" {
		by = ix.settings.Faceting.SortFacetValuesBy["*"]
	}
	keys := sortedKeys(counts)
	if by == "count" {
		sort.SliceStable(keys, func(i, j int) bool { return counts[keys[i]] > counts[keys[j]] })
	}
	out := map[string]int{}
	for _, k := range keys[:min(len(keys), ix.settings.Faceting.MaxValuesPerFacet)] {
		out[k] = counts[k]
	}
	return out
}

func sumTypos(ms []wordMatch) int {
	n := 0
	for _, m := range ms {
		n += m.typos
	}
	return n
}

func sumAttr(ms []wordMatch) int {
	n := 0
	for _, m := range ms {
		if m.ok {
			n += m.attr
		}
	}
	return n
}

func countExact(ms []wordMatch) int {
	n := 0
	for _, m := range ms {
		if m.ok && m.exact {
			n++
		}
	}
	return n
}

// compareValues orders two sort values; documents without the value come last in both
// directions, numbers before strings.
func compareValues(a, b any, desc bool) int {
	rank := func(v any) int {
		switch v.(type) {
		case float64:
			return 0
		case string:
			return 1
		case bool:
			return 2
		}
		return 3
	}
	ra, rb := rank(a), rank(b)
	if ra != rb {
		return ra - rb
	}
	c := 0
	switch x := a.(type) {
	case float64:
		y := b.(float64)
		switch {
		case x < y:
			c = -1
		case x > y:
			c = 1
		}
	case string:
		c = strings.Compare(x, b.(string))
	case bool:
		if x != b.(bool) {
			c = 1
			if !x {
				c = -1
			}
		}
	}
	if desc {
		c = -c
	}
	return c
}

// formatHit builds one hit: the retrieved attributes and _formatted.
func (ix *index) formatHit(c candidate, words []queryWord, p *searchParams) map[string]any {
	retrieve := p.AttributesToRetrieve
	all := len(retrieve) == 0 || slices.Contains(retrieve, "*")
	hit := map[string]any{}
	for k, v := range c.doc {
		if all || slices.Contains(retrieve, k) {
			hit[k] = v
		}
	}
	if len(p.AttributesToHighlight) == 0 && len(p.AttributesToCrop) == 0 {
		return hit
	}
	pre, post, marker, cropLen := "<em>", "</em>", "…", 10
	if p.HighlightPreTag != nil {
		pre = *p.HighlightPreTag
	}
	if p.HighlightPostTag != nil {
		post = *p.HighlightPostTag
	}
	if p.CropMarker != nil {
		marker = *p.CropMarker
	}
	if p.CropLength != nil {
		cropLen = *p.CropLength
	}
	formatted := map[string]any{}
	attrs := map[string]bool{}
	for k := range hit {
		attrs[k] = true
	}
	for _, a := range append(slices.Clone(p.AttributesToHighlight), p.AttributesToCrop...) {
		if a == "*" {
			for k := range c.doc {
				attrs[k] = true
			}
		} else {
			attrs[a] = true
		}
	}
	highlightAll := slices.Contains(p.AttributesToHighlight, "*")
	for a := range attrs {
		v, ok := c.doc[a]
		if !ok {
			continue
		}
		hl := highlightAll || slices.Contains(p.AttributesToHighlight, a)
		crop := slices.Contains(p.AttributesToCrop, a) || slices.Contains(p.AttributesToCrop, "*")
		format := func(s string) string {
			return formatText(s, words, func(term string) int { return ix.allowedTypos(term, a) }, hl, crop, pre, post, marker, cropLen)
		}
		switch x := v.(type) {
		case string:
			formatted[a] = format(x)
		case []any:
			arr := make([]any, len(x))
			for i, e := range x {
				if s, ok := e.(string); ok {
					arr[i] = format(s)
				} else {
					arr[i] = e
				}
			}
			formatted[a] = arr
		default:
			formatted[a] = formatValue(v)
		}
	}
	hit["_formatted"] = formatted
	return hit
}

// formatValue renders a non-string value as _formatted does (numbers as strings).
func formatValue(v any) any {
	switch x := v.(type) {
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	}
	return v
}

// formatText highlights the words of text that match the query and crops it to about
// cropLen words around the first match.
func formatText(text string, words []queryWord, budget func(string) int, hl, crop bool, pre, post, marker string, cropLen int) string {
	toks := tokens(text)
	type mark struct{ start, end int }
	var marks []mark
	first := -1
	for ti, t := range toks {
		for _, w := range words {
			ok, _, _ := matchToken(w, t.term, budget(w.term))
			if !ok {
				continue
			}
			end := t.end
			if w.prefix && strings.HasPrefix(t.term, w.term) && t.term != w.term {
				// A prefix match highlights the typed part only.
				end = t.start + prefixBytes(text[t.start:t.end], utf8.RuneCountInString(w.term))
			}
			marks = append(marks, mark{t.start, end})
			if first < 0 {
				first = ti
			}
			break
		}
	}
	from, to := 0, len(text)
	prefixMarker, suffixMarker := "", ""
	if crop && len(toks) > cropLen {
		startTok := 0
		if first > 0 {
			startTok = max(0, min(first-cropLen/4, len(toks)-cropLen))
		}
		endTok := min(startTok+cropLen, len(toks))
		if startTok > 0 {
			from, prefixMarker = toks[startTok].start, marker
		}
		if endTok < len(toks) {
			to, suffixMarker = toks[endTok-1].end, marker
		}
	}
	var b strings.Builder
	b.WriteString(prefixMarker)
	pos := from
	for _, m := range marks {
		if !hl || m.start < from || m.end > to {
			continue
		}
		b.WriteString(text[pos:m.start])
		b.WriteString(pre)
		b.WriteString(text[m.start:m.end])
		b.WriteString(post)
		pos = m.end
	}
	b.WriteString(text[pos:to])
	b.WriteString(suffixMarker)
	return b.String()
}

// prefixBytes returns the bytes of the first n characters of s, after folding (an
// approximation: one character of the query per character of the text).
func prefixBytes(s string, n int) int {
	i := 0
	for k := 0; k < n && i < len(s); k++ {
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
	}
	return i
}

// ---------------------------------------------------------------------------------------
// Facet search.

type facetSearchParams struct {
	FacetName            *string          `json:"facetName"`
	FacetQuery           *string          `json:"facetQuery"`
	Q                    *string          `json:"q"`
	Filter               any              `json:"filter"`
	MatchingStrategy     *string          `json:"matchingStrategy"`
	AttributesToSearchOn []string         `json:"attributesToSearchOn"`
	ExhaustiveFacetCount *bool            `json:"exhaustiveFacetCount"`
	Locales              []string         `json:"locales"`
	Hybrid               *json.RawMessage `json:"hybrid"`
	Vector               *json.RawMessage `json:"vector"`
}

func (ix *index) facetSearch(body []byte) (map[string]any, *apiError) {
	var p facetSearchParams
	if e := decodeStrict(body, &p, "bad_request"); e != nil {
		return nil, e
	}
	if p.FacetName == nil {
		return nil, errorf(http.StatusBadRequest, "missing_facet_search_facet_name", "Missing field `facetName`")
	}
	if !ix.filterable()[*p.FacetName] {
		return nil, errorf(http.StatusBadRequest, "invalid_facet_search_facet_name", "Attribute `%s` is not facet-searchable. Available facet-searchable attributes are: `%s`.", *p.FacetName, strings.Join(sortedKeys(ix.filterable()), ", "))
	}
	if !ix.settings.FacetSearch {
		return nil, errorf(http.StatusBadRequest, "facet_search_disabled", "The facet search is disabled for this index")
	}
	sp := searchParams{Q: p.Q, Filter: p.Filter, MatchingStrategy: p.MatchingStrategy, AttributesToSearchOn: p.AttributesToSearchOn,
		Facets: []string{*p.FacetName}, HitsPerPage: new(int)}
	maxTotal := ix.settings.Pagination.MaxTotalHits
	ix.settings.Pagination.MaxTotalHits = math.MaxInt32
	res, e := ix.search(&sp)
	ix.settings.Pagination.MaxTotalHits = maxTotal
	if e != nil {
		return nil, e
	}
	counts := res["facetDistribution"].(map[string]map[string]int)[*p.FacetName]
	fq := ""
	if p.FacetQuery != nil {
		fq = *p.FacetQuery
	}
	// Like Meilisearch: the normalised query must be, within its typo budget, a prefix
	// of the whole normalised value.
	nq := fold(fq)
	budget := ix.allowedTypos(nq, *p.FacetName)
	var hits []map[string]any
	for _, v := range sortedKeys(counts) {
		if nq != "" && !prefixWithin(nq, fold(v), budget) {
			continue
		}
		hits = append(hits, map[string]any{"value": v, "count": counts[v]})
	}
	sort.SliceStable(hits, func(i, j int) bool { return hits[i]["count"].(int) > hits[j]["count"].(int) })
	if len(hits) > 100 {
		hits = hits[:100]
	}
	if hits == nil {
		hits = []map[string]any{}
	}
	return map[string]any{"facetHits": hits, "facetQuery": p.FacetQuery, "processingTimeMs": 0}, nil
}

// prefixWithin reports whether some prefix of s is within typos edits of q.
func prefixWithin(q, s string, typos int) bool {
	if strings.HasPrefix(s, q) {
		return true
	}
	if typos == 0 {
		return false
	}
	rs := []rune(s)
	n := utf8.RuneCountInString(q)
	for k := max(0, n-typos); k <= min(len(rs), n+typos); k++ {
		if osa(q, string(rs[:k])) <= typos {
			return true
		}
	}
	return false
}
