package embedded

import (
	"unicode/utf8"

	"github.com/blevesearch/bleve/v2/analysis"
	"github.com/blevesearch/bleve/v2/registry"

	"github.com/shopfront/bookstore/search/internal/words"
)

// analyzerName is the Bleve name of the analyzer (words.Tokenize); bump its version
// whenever the tokenizer changes, so that Open discards indexes built with the old rules.
const analyzerName = "bookstore_text_v3"

func init() {
	err := registry.RegisterAnalyzer(analyzerName, func(map[string]interface{}, *registry.Cache) (analysis.Analyzer, error) {
		return textAnalyzer{}, nil
	})
	if err != nil {
		panic(err)
	}
}

type textAnalyzer struct{}

func (textAnalyzer) Analyze(input []byte) analysis.TokenStream {
	var out analysis.TokenStream
	pos := 0
	words.Tokenize(string(input), func(term []byte, start, end int) {
		pos++
		out = append(out, &analysis.Token{
			Term: append([]byte(nil), term...), Start: start, End: end, Position: pos,
			Type: analysis.AlphaNumeric,
		})
	})
	return out
}

// tokenize and normalizeText are short names for the shared analysis.
func tokenize(s string, fn func(term []byte, start, end int)) { words.Tokenize(s, fn) }

func normalizeText(s string) string { return words.Normalize(s) }

const maxTermLen = words.MaxTermLen

// runeLen is the number of characters of a term.
func runeLen(term string) int { return utf8.RuneCountInString(term) }
