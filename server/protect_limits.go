package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"
)

// Defaults of the operation limits (Config.ComplexityLimit, MaxDepth, MaxAliases,
// MaxTokens).
const (
	// DefaultComplexityLimit: see complexity(); a page of 20 books with their authors,
	// categories and first reviews costs about 700.
	DefaultComplexityLimit = 5000
	// DefaultMaxDepth leaves room for Relay paths (connection -> edges -> node) nested a
	// few times: category -> books -> edges -> node -> reviews -> edges -> node -> title
	// is 8.
	DefaultMaxDepth = 12
	// DefaultMaxAliases is far above what a page's query needs and far below what
	// amplifying an uncosted field (search, node) a thousand times would take.
	DefaultMaxAliases = 30
	// DefaultMaxTokens bounds the work of parsing one document (the GraphiQL
	// introspection query is about 300 tokens).
	DefaultMaxTokens = 15_000
	// MaxRepeatedFields bounds the repeated selections of a document (see
	// ValidationGuard); queries written by hand or by Relay/Apollo repeat a few fields
	// (id, __typename) across fragments, far fewer than this.
	MaxRepeatedFields = 100
	// MaxFragments bounds the fragment definitions of a document (see ValidationGuard);
	// a page query compiled by Relay has a few dozen.
	MaxFragments = 200
)

// Error codes (extensions.code) of operations refused for their shape, before anything
// runs; like COMPLEXITY_LIMIT_EXCEEDED they are request errors (400 under
// application/graphql-response+json).
const (
	CodeDepthLimitExceeded = "DEPTH_LIMIT_EXCEEDED"
	CodeAliasLimitExceeded = "ALIAS_LIMIT_EXCEEDED"
	// codeComplexityLimit and codeValidationFailed are gqlgen's codes.
	codeComplexityLimit  = "COMPLEXITY_LIMIT_EXCEEDED"
	codeValidationFailed = "GRAPHQL_VALIDATION_FAILED"
)

// QueryLimits refuses operations deeper than MaxDepth fields or with more than
// MaxAliases aliases (0: no limit). The complexity limit prices lists by their page
// size; these catch what it cannot: a thousand aliases of a field it prices at 1, a
// recursion (category children, books -> authors -> books) whose cost it does not see.
// Depth is counted outside introspection (__schema, __type), which the validator's
// MaxIntrospectionDepth rule bounds instead: GraphiQL's introspection query alone is 15
// levels deep, and harmless.
//
// MaxCost is the complexity limit, enforced here on a lower bound of the complexity:
// the operation's fields after fragment expansion (introspection fields and __typename
// included), each costing at least 1. gqlgen's complexity walk expands every fragment
// spread anew, so 30 fragments that each spread the next twice (a few hundred bytes) take
// it 2^30 steps; measured here once per fragment, such an operation is refused with COMPLEXITY_LIMIT_EXCEEDED before that walk
// runs. QueryLimits must therefore run before the complexity extension.
type QueryLimits struct {
	MaxDepth   int
	MaxAliases int
	MaxCost    int
}

var (
	_ graphql.HandlerExtension        = QueryLimits{}
	_ graphql.OperationContextMutator = QueryLimits{}
)

// ExtensionName implements graphql.HandlerExtension.
func (QueryLimits) ExtensionName() string { return "QueryLimits" }

// Validate implements graphql.HandlerExtension.
func (QueryLimits) Validate(graphql.ExecutableSchema) error { return nil }

// MutateOperationContext implements graphql.OperationContextMutator.
func (l QueryLimits) MutateOperationContext(_ context.Context, oc *graphql.OperationContext) *gqlerror.Error {
	if oc.Operation == nil {
		return nil
	}
	m := measurer{frags: map[string]*shape{}}
	s := m.selectionSet(oc.Operation.SelectionSet)
	switch {
	case l.MaxCost > 0 && s.fields > l.MaxCost:
		return limitError(codeComplexityLimit, "operation has at least %d fields once its fragments are expanded, which exceeds the complexity limit of %d", s.fields, l.MaxCost)
	case l.MaxDepth > 0 && s.depth > l.MaxDepth:
		return limitError(CodeDepthLimitExceeded, "operation is %d fields deep, which exceeds the limit of %d", s.depth, l.MaxDepth)
	case l.MaxAliases > 0 && s.aliases > l.MaxAliases:
		return limitError(CodeAliasLimitExceeded, "operation uses %d aliases, which exceeds the limit of %d", s.aliases, l.MaxAliases)
	}
	return nil
}

func limitError(code, format string, args ...any) *gqlerror.Error {
	return &gqlerror.Error{Message: fmt.Sprintf(format, args...), Extensions: map[string]any{"code": code}}
}

// shape is what the limits look at in a selection set.
type shape struct {
	depth   int // fields deep, outside introspection
	fields  int // fields after fragment expansion, introspection and __typename included
	aliases int // aliased fields, a fragment's counted at each spread
}

type measurer struct {
	frags map[string]*shape // measured fragments; nil value: being measured (a cycle)
}

func (m *measurer) selectionSet(set ast.SelectionSet) shape {
	var out shape
	merge := func(s shape, extraDepth int) {
		out.depth = max(out.depth, s.depth+extraDepth)
		out.aliases = satAdd(out.aliases, s.aliases)
		out.fields = satAdd(out.fields, s.fields)
	}
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			if s.Alias != "" && s.Alias != s.Name {
				out.aliases = satAdd(out.aliases, 1)
			}
			out.fields = satAdd(out.fields, 1)
			sub := m.selectionSet(s.SelectionSet)
			if s.Name == "__schema" || s.Name == "__type" {
				// Introspection's depth is the validator's to bound, but its fields
				// count like any other: gqlgen's complexity walk expands them too.
				sub.depth = -1
			}
			merge(sub, 1)
		case *ast.InlineFragment:
			merge(m.selectionSet(s.SelectionSet), 0)
		case *ast.FragmentSpread:
			merge(m.fragment(s), 0)
		}
	}
	return out
}

func (m *measurer) fragment(s *ast.FragmentSpread) shape {
	if s.Definition == nil {
		return shape{}
	}
	if got, seen := m.frags[s.Name]; seen {
		if got == nil {
			return shape{} // a cycle; validation refuses it before this runs anyway
		}
		return *got
	}
	m.frags[s.Name] = nil
	sh := m.selectionSet(s.Definition.SelectionSet)
	m.frags[s.Name] = &sh
	return sh
}

func satAdd(a, b int) int {
	if c := a + b; c >= a {
		return c
	}
	return int(^uint(0) >> 1)
}

// ValidationGuard protects the validator. Its OverlappingFieldsCanBeMerged rule compares
// every pair of selections that share a response name in one selection set, and every
// pair of fragments spread together, so its work grows with the square of both:
// `{ __typename __typename ... }` 14,000 times (150 KB, under the token limit) takes it
// seconds of CPU, 1,400 one-field fragments spread side by side half a second.
// ValidationGuard parses the document first (with the same token limit) and refuses it
// with GRAPHQL_VALIDATION_FAILED when its selection sets repeat response names more than
// MaxRepeatedFields times in all, or when it defines more than MaxFragments fragments.
//
// Documents already in Cache (parsed and validated before) are not looked at again, so
// the extra parse is paid once per distinct document; nor are those of the Trusted
// manifest (the persisted queries), which the clients' own build produced.
type ValidationGuard struct {
	Cache      graphql.Cache[*ast.QueryDocument] // the executor's query cache
	TokenLimit int                               // 0: none
	Trusted    map[string]string                 // sha256 hex -> document
}

var (
	_ graphql.HandlerExtension          = ValidationGuard{}
	_ graphql.OperationParameterMutator = ValidationGuard{}
)

// ExtensionName implements graphql.HandlerExtension.
func (ValidationGuard) ExtensionName() string { return "ValidationGuard" }

// Validate implements graphql.HandlerExtension.
func (ValidationGuard) Validate(graphql.ExecutableSchema) error { return nil }

// MutateOperationParameters implements graphql.OperationParameterMutator.
func (g ValidationGuard) MutateOperationParameters(ctx context.Context, raw *graphql.RawParams) *gqlerror.Error {
	if raw.Query == "" {
		return nil
	}
	if g.Cache != nil {
		if _, ok := g.Cache.Get(ctx, raw.Query); ok {
			return nil
		}
	}
	doc, err := parser.ParseQueryWithTokenLimit(&ast.Source{Input: raw.Query}, g.TokenLimit)
	if err != nil {
		return nil // the executor parses it again and reports the error as usual
	}
	var refusal *gqlerror.Error
	n := 0
	for _, op := range doc.Operations {
		n = satAdd(n, repeats(op.SelectionSet))
	}
	for _, f := range doc.Fragments {
		n = satAdd(n, repeats(f.SelectionSet))
	}
	switch {
	case len(doc.Fragments) > MaxFragments:
		refusal = limitError(codeValidationFailed, "the document defines %d fragments; at most %d are validated", len(doc.Fragments), MaxFragments)
	case n > MaxRepeatedFields:
		refusal = limitError(codeValidationFailed, "the document selects the same response names %d times over; at most %d repeats are validated", n, MaxRepeatedFields)
	default:
		return nil
	}
	if len(g.Trusted) > 0 {
		sum := sha256.Sum256([]byte(raw.Query))
		if _, ok := g.Trusted[hex.EncodeToString(sum[:])]; ok {
			return nil
		}
	}
	return refusal
}

// repeats counts, in set and every selection set below it, the fields whose response
// name another field of the same set (inline fragments included) already has.
func repeats(set ast.SelectionSet) int {
	seen := map[string]int{}
	n := 0
	var walk func(ast.SelectionSet)
	walk = func(set ast.SelectionSet) {
		for _, sel := range set {
			switch s := sel.(type) {
			case *ast.Field:
				name := s.Alias
				if name == "" {
					name = s.Name
				}
				if seen[name]++; seen[name] > 1 {
					n++
				}
				n = satAdd(n, repeats(s.SelectionSet))
			case *ast.InlineFragment:
				walk(s.SelectionSet)
			}
		}
	}
	walk(set)
	return n
}
