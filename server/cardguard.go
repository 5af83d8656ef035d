package server

import (
	"context"
	"fmt"

	"github.com/99designs/gqlgen/graphql"
	"github.com/google/uuid"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/pii"
)

// CardGuard refuses any operation with an argument or variable that contains a payment
// card number (13–19 digits passing the Luhn check). Payment data reaches the bookstore
// only as PSP tokens; a card number typed into a name, address or search box must be
// neither stored nor logged, so it is stopped here, before any resolver runs, for every
// field at once. The error names the argument, never the value.
//
// It first bounds the strings it is about to scan (and every resolver will see): each at
// most MaxStringBytes, all together at most MaxTotalBytes, else BAD_USER_INPUT. Unicode
// normalisation costs about 0.4 s per MiB of decomposed accents, so without the bound a
// body of huge strings would buy seconds of CPU before any resolver refused them.
//
// In a phone field (an input field named phone, or a variable used only as one) a valid
// international phone number (pii.ParsePhone) is not a card, whatever Luhn says: one
// mobile number in ten passes it. Everywhere else a PAN written with a leading "+" is
// still a PAN ("+4929 1234 5678 9015" parses as a German number), so the exemption is
// never applied to a search box or a name; identity's phone validation refuses the
// card-shaped phone numbers the exemption lets through.
//
// The variables may hold at most MaxValues values in all (strings, numbers, list
// elements, object fields), else BAD_USER_INPUT naming the variable, checked on the
// decoded JSON before gqlgen coerces it: a 1 MiB body of 200,000 tiny strings would
// otherwise cost a second of coercion and scanning.
type CardGuard struct {
	MaxStringBytes int // 0 means DefaultMaxStringBytes
	MaxTotalBytes  int // 0 means DefaultMaxStringTotal
	MaxValues      int // 0 means DefaultMaxVariableValues
}

// String limits of CardGuard: above any field of the schema (the longest, a review's
// body, is 5000 characters: up to 20,000 bytes of UTF-8, plus whitespace that is
// trimmed), far below the body limit.
const (
	DefaultMaxStringBytes = 24 << 10
	DefaultMaxStringTotal = 64 << 10
	// DefaultMaxVariableValues is far above the largest list an input takes (a filter's
	// slugs, a cart's lines).
	DefaultMaxVariableValues = 10_000
)

var (
	_ graphql.HandlerExtension          = CardGuard{}
	_ graphql.OperationContextMutator   = CardGuard{}
	_ graphql.OperationParameterMutator = CardGuard{}
)

// ExtensionName implements graphql.HandlerExtension.
func (CardGuard) ExtensionName() string { return "CardGuard" }

// Validate implements graphql.HandlerExtension.
func (CardGuard) Validate(graphql.ExecutableSchema) error { return nil }

// MutateOperationParameters implements graphql.OperationParameterMutator: the count of
// variable values, before anything walks them.
func (g CardGuard) MutateOperationParameters(_ context.Context, raw *graphql.RawParams) *gqlerror.Error {
	limit := g.MaxValues
	if limit <= 0 {
		limit = DefaultMaxVariableValues
	}
	n := 0
	var count func(v any) bool // false once over the limit
	count = func(v any) bool {
		if n++; n > limit {
			return false
		}
		switch v := v.(type) {
		case []any:
			for _, e := range v {
				if !count(e) {
					return false
				}
			}
		case map[string]any:
			for _, e := range v {
				if !count(e) {
					return false
				}
			}
		}
		return true
	}
	for name, v := range raw.Variables {
		if !count(v) {
			return inputError("$"+name, "the variables hold more than %d values", limit)
		}
	}
	return nil
}

// MutateOperationContext implements graphql.OperationContextMutator.
func (g CardGuard) MutateOperationContext(_ context.Context, oc *graphql.OperationContext) *gqlerror.Error {
	if err := g.checkSizes(oc); err != nil {
		return err
	}
	phoneVars := phoneVariables(oc.Operation)
	for name, v := range oc.Variables {
		if containsCard(v, phoneVars[name]) {
			return cardError("$" + name)
		}
	}
	if oc.Operation == nil {
		return nil
	}
	var found string
	eachArgument(oc.Operation.SelectionSet, func(a *ast.Argument) bool {
		if literalHasCard(a.Value, false) {
			found = a.Name
		}
		return found == ""
	})
	if found != "" {
		return cardError(found)
	}
	return nil
}

// checkSizes walks every string of the variables and of the operation's literal
// arguments, without looking inside them, and refuses oversized ones.
func (g CardGuard) checkSizes(oc *graphql.OperationContext) *gqlerror.Error {
	maxOne, maxAll := g.MaxStringBytes, g.MaxTotalBytes
	if maxOne <= 0 {
		maxOne = DefaultMaxStringBytes
	}
	if maxAll <= 0 {
		maxAll = DefaultMaxStringTotal
	}
	total := 0
	bad := ""
	var value func(name string, v any)
	value = func(name string, v any) {
		switch v := v.(type) {
		case string:
			total += len(v)
			if len(v) > maxOne && bad == "" {
				bad = name
			}
		case []any:
			for _, e := range v {
				value(name, e)
			}
		case map[string]any:
			for _, e := range v {
				value(name, e)
			}
		}
	}
	for name, v := range oc.Variables {
		value("$"+name, v)
	}
	var literal func(name string, v *ast.Value)
	literal = func(name string, v *ast.Value) {
		if v == nil {
			return
		}
		if v.Kind == ast.StringValue || v.Kind == ast.BlockValue {
			value(name, v.Raw)
		}
		for _, c := range v.Children {
			literal(name, c.Value)
		}
	}
	if oc.Operation != nil {
		// Literals are in the document, which the token and body limits already bound;
		// fragments are visited once each, so spreads cannot multiply the walk.
		eachArgument(oc.Operation.SelectionSet, func(a *ast.Argument) bool {
			literal(a.Name, a.Value)
			return true
		})
	}
	switch {
	case bad != "":
		return inputError(bad, "a string is longer than %d bytes", maxOne)
	case total > maxAll:
		return inputError("", "the strings of this request add up to more than %d bytes", maxAll)
	}
	return nil
}

func inputError(field, format string, args ...any) *gqlerror.Error {
	ext := map[string]any{"code": bookstore.CodeBadUserInput}
	if field != "" {
		ext["field"] = field
	}
	return &gqlerror.Error{Message: fmt.Sprintf(format, args...), Extensions: ext}
}

func cardError(arg string) *gqlerror.Error {
	return &gqlerror.Error{
		Message: "a value looks like a payment card number; card data is never accepted — pay with a PSP token",
		Extensions: map[string]any{
			"code":  bookstore.CodeBadUserInput,
			"field": arg,
		},
	}
}

// containsCard reports whether a variable's value holds a card number; phone says the
// value itself is a phone field.
func containsCard(v any, phone bool) bool {
	switch v := v.(type) {
	case string:
		return isCard(v, phone)
	case []any:
		for _, e := range v {
			if containsCard(e, phone) {
				return true
			}
		}
	case map[string]any:
		for k, e := range v {
			if containsCard(e, k == phoneField) {
				return true
			}
		}
	}
	return false
}

// phoneField is the name of the input fields that hold phone numbers.
const phoneField = "phone"

func isCard(s string, phone bool) bool {
	if isUUID(s) {
		// The schema asks for UUIDs as idempotency keys, and one random UUID in about
		// 1,400 starts with all-digit groups that read as a Luhn-valid 16-digit number
		// ("62088322-3099-4413-..."). A value that is entirely one canonical UUID is an
		// identifier, not a card someone typed.
		return false
	}
	if phone {
		if _, ok := pii.ParsePhone(s); ok {
			return false
		}
	}
	return pii.ContainsCardNumber(s)
}

// isUUID reports whether s is exactly one UUID in the canonical 8-4-4-4-12 hex form.
func isUUID(s string) bool {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return false
	}
	_, err := uuid.Parse(s)
	return err == nil
}

func literalHasCard(v *ast.Value, phone bool) bool {
	if v == nil {
		return false
	}
	if v.Kind == ast.StringValue || v.Kind == ast.BlockValue {
		return isCard(v.Raw, phone)
	}
	for _, c := range v.Children {
		if literalHasCard(c.Value, v.Kind == ast.ObjectValue && c.Name == phoneField) {
			return true
		}
	}
	return false
}

// phoneVariables returns the variables every use of which is the value of a phone field
// ({phone: $p}): only those get the phone exemption, so a variable also used as a search
// query is scanned like any other.
func phoneVariables(op *ast.OperationDefinition) map[string]bool {
	if op == nil {
		return nil
	}
	vars := map[string]bool{}
	var value func(v *ast.Value, phone bool)
	value = func(v *ast.Value, phone bool) {
		if v == nil {
			return
		}
		if v.Kind == ast.Variable {
			if prev, seen := vars[v.Raw]; !seen || prev {
				vars[v.Raw] = phone
			}
			return
		}
		for _, c := range v.Children {
			value(c.Value, v.Kind == ast.ObjectValue && c.Name == phoneField)
		}
	}
	eachArgument(op.SelectionSet, func(a *ast.Argument) bool {
		value(a.Value, false)
		return true
	})
	return vars
}

// eachArgument calls fn with every argument of every field and field directive in set,
// following inline fragments and fragment spreads, each fragment once however often it is
// spread (so spreads cannot multiply the walk), until fn returns false.
func eachArgument(set ast.SelectionSet, fn func(*ast.Argument) bool) {
	seen := map[string]bool{}
	more := true
	var walk func(ast.SelectionSet)
	walk = func(set ast.SelectionSet) {
		for _, sel := range set {
			if !more {
				return
			}
			switch s := sel.(type) {
			case *ast.Field:
				for _, a := range s.Arguments {
					if more = more && fn(a); !more {
						return
					}
				}
				for _, d := range s.Directives {
					for _, a := range d.Arguments {
						if more = more && fn(a); !more {
							return
						}
					}
				}
				walk(s.SelectionSet)
			case *ast.InlineFragment:
				walk(s.SelectionSet)
			case *ast.FragmentSpread:
				if s.Definition != nil && !seen[s.Name] {
					seen[s.Name] = true
					walk(s.Definition.SelectionSet)
				}
			}
		}
	}
	walk(set)
}
