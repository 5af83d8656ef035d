package meilitest

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode"
)

// The filter expression grammar of Meilisearch, as documented ("Filter expression
// reference") and implemented by its filter-parser crate, restricted to what a book
// catalog needs:
//
//	expr      = or
//	or        = and { "OR" and }
//	and       = not { "AND" not }
//	not       = "NOT" not | primary
//	primary   = "(" expr ")" | condition
//	condition = attr ( "=" | "!=" | ">" | ">=" | "<" | "<=" ) value
//	          | attr [ "NOT" ] "IN" "[" value { "," value } [ "," ] "]"
//	          | attr value "TO" value
//	          | attr [ "NOT" ] "EXISTS"
//	value     = word | "'" chars "'" | '"' chars '"'
//
// Inside quotes a backslash escapes the next character (`\"`, `\\`). Words are runs of
// letters, digits, '_', '-' and '.'; keywords are upper case. AND binds tighter than OR.
// String comparisons ignore case; numeric comparisons apply to numbers. Anything else is
// a syntax error, reported like Meilisearch (invalid_search_filter).

type filterNode interface {
	eval(doc map[string]any) bool
}

type (
	orNode  []filterNode
	andNode []filterNode
	notNode struct{ x filterNode }
	cmpNode struct {
		attr, op string
		value    string
	}
	inNode struct {
		attr   string
		values []string
		not    bool
	}
	toNode struct {
		attr     string
		from, to string
	}
	existsNode struct {
		attr string
		not  bool
	}
)

func (n orNode) eval(d map[string]any) bool {
	for _, x := range n {
		if x.eval(d) {
			return true
		}
	}
	return false
}

func (n andNode) eval(d map[string]any) bool {
	for _, x := range n {
		if !x.eval(d) {
			return false
		}
	}
	return true
}

func (n notNode) eval(d map[string]any) bool { return !n.x.eval(d) }

func (n cmpNode) eval(d map[string]any) bool {
	if n.op == "!=" {
		return !(cmpNode{attr: n.attr, op: "=", value: n.value}).eval(d)
	}
	return anyValue(d[n.attr], func(v any) bool { return compare(v, n.op, n.value) })
}

func (n inNode) eval(d map[string]any) bool {
	in := anyValue(d[n.attr], func(v any) bool {
		for _, x := range n.values {
			if compare(v, "=", x) {
				return true
			}
		}
		return false
	})
	return in != n.not
}

func (n toNode) eval(d map[string]any) bool {
	return anyValue(d[n.attr], func(v any) bool { return compare(v, ">=", n.from) && compare(v, "<=", n.to) })
}

func (n existsNode) eval(d map[string]any) bool {
	_, ok := d[n.attr]
	return ok != n.not
}

// anyValue applies f to a field's value, or to each element of an array value.
func anyValue(v any, f func(any) bool) bool {
	if arr, ok := v.([]any); ok {
		for _, x := range arr {
			if f(x) {
				return true
			}
		}
		return false
	}
	if v == nil {
		return false
	}
	return f(v)
}

// compare applies op between a document value and a filter value.
func compare(v any, op, want string) bool {
	switch x := v.(type) {
	case float64:
		w, err := strconv.ParseFloat(want, 64)
		if err != nil || math.IsNaN(w) {
			return false
		}
		switch op {
		case "=":
			return x == w
		case ">":
			return x > w
		case ">=":
			return x >= w
		case "<":
			return x < w
		case "<=":
			return x <= w
		}
	case bool:
		return op == "=" && strings.EqualFold(strconv.FormatBool(x), want)
	case string:
		if op == "=" {
			return strings.EqualFold(x, want)
		}
		// Meilisearch compares strings lexicographically for < and >.
		c := strings.Compare(strings.ToLower(x), strings.ToLower(want))
		switch op {
		case ">":
			return c > 0
		case ">=":
			return c >= 0
		case "<":
			return c < 0
		case "<=":
			return c <= 0
		}
	}
	return false
}

// filterError is a filter that does not parse or names an attribute that is not
// filterable.
type filterError struct{ msg string }

func (e *filterError) Error() string { return e.msg }

type filterParser struct {
	s          string
	pos        int
	filterable map[string]bool
}

// parseFilter parses the filter parameter: a string, an array of strings and arrays
// (outer AND, inner OR), or null.
func parseFilter(raw any, filterable map[string]bool) (filterNode, error) {
	switch f := raw.(type) {
	case nil:
		return nil, nil
	case string:
		if strings.TrimSpace(f) == "" {
			return nil, nil
		}
		p := &filterParser{s: f, filterable: filterable}
		n, err := p.expr()
		if err != nil {
			return nil, err
		}
		p.space()
		if p.pos != len(p.s) {
			return nil, p.errorf("Found unexpected characters at the end of the filter: `%s`. You probably forgot an `OR` or an `AND` rule.", p.s[p.pos:])
		}
		return n, nil
	case []any:
		var and andNode
		for _, x := range f {
			switch y := x.(type) {
			case string:
				n, err := parseFilter(y, filterable)
				if err != nil {
					return nil, err
				}
				if n != nil {
					and = append(and, n)
				}
			case []any:
				var or orNode
				for _, z := range y {
					s, ok := z.(string)
					if !ok {
						return nil, &filterError{"Invalid syntax for the filter parameter: expected a string in an inner array."}
					}
					n, err := parseFilter(s, filterable)
					if err != nil {
						return nil, err
					}
					if n != nil {
						or = append(or, n)
					}
				}
				if len(or) > 0 {
					and = append(and, or)
				}
			default:
				return nil, &filterError{"Invalid syntax for the filter parameter: expected a string or an array."}
			}
		}
		return and, nil
	}
	return nil, &filterError{"Invalid syntax for the filter parameter: expected a string, an array or null."}
}

func (p *filterParser) errorf(format string, args ...any) error {
	return &filterError{fmt.Sprintf(format, args...) + "\n" + p.s}
}

func (p *filterParser) space() {
	for p.pos < len(p.s) && (p.s[p.pos] == ' ' || p.s[p.pos] == '\t' || p.s[p.pos] == '\n' || p.s[p.pos] == '\r') {
		p.pos++
	}
}

// keyword consumes kw (followed by a non-word character) if it comes next.
func (p *filterParser) keyword(kw string) bool {
	p.space()
	if !strings.HasPrefix(p.s[p.pos:], kw) {
		return false
	}
	end := p.pos + len(kw)
	if end < len(p.s) && isWordChar(rune(p.s[end])) {
		return false
	}
	p.pos = end
	return true
}

func (p *filterParser) expr() (filterNode, error) {
	first, err := p.and()
	if err != nil {
		return nil, err
	}
	or := orNode{first}
	for p.keyword("OR") {
		n, err := p.and()
		if err != nil {
			return nil, err
		}
		or = append(or, n)
	}
	if len(or) == 1 {
		return first, nil
	}
	return or, nil
}

func (p *filterParser) and() (filterNode, error) {
	first, err := p.not()
	if err != nil {
		return nil, err
	}
	and := andNode{first}
	for p.keyword("AND") {
		n, err := p.not()
		if err != nil {
			return nil, err
		}
		and = append(and, n)
	}
	if len(and) == 1 {
		return first, nil
	}
	return and, nil
}

func (p *filterParser) not() (filterNode, error) {
	if p.keyword("NOT") {
		x, err := p.not()
		if err != nil {
			return nil, err
		}
		return notNode{x}, nil
	}
	return p.primary()
}

func (p *filterParser) primary() (filterNode, error) {
	p.space()
	if p.pos < len(p.s) && p.s[p.pos] == '(' {
		p.pos++
		n, err := p.expr()
		if err != nil {
			return nil, err
		}
		p.space()
		if p.pos >= len(p.s) || p.s[p.pos] != ')' {
			return nil, p.errorf("Expression `%s` is missing the following closing delimiter: `)`.", p.s)
		}
		p.pos++
		return n, nil
	}
	return p.condition()
}

func (p *filterParser) condition() (filterNode, error) {
	start := p.pos
	attr, _, err := p.value()
	if err != nil {
		return nil, err
	}
	if !p.filterable[attr] {
		return nil, &filterError{fmt.Sprintf("Attribute `%s` is not filterable. Available filterable attributes are: `%s`.\n%s", attr, strings.Join(sortedKeys(p.filterable), ", "), p.s)}
	}
	p.space()
	for _, op := range []string{">=", "<=", "!=", "=", ">", "<"} {
		if strings.HasPrefix(p.s[p.pos:], op) {
			p.pos += len(op)
			v, _, err := p.value()
			if err != nil {
				return nil, err
			}
			return cmpNode{attr: attr, op: op, value: v}, nil
		}
	}
	not := p.keyword("NOT")
	switch {
	case p.keyword("IN"):
		p.space()
		if p.pos >= len(p.s) || p.s[p.pos] != '[' {
			return nil, p.errorf("Expected `[` after `IN` keyword.")
		}
		p.pos++
		var values []string
		for {
			p.space()
			if p.pos < len(p.s) && p.s[p.pos] == ']' {
				p.pos++
				break
			}
			v, _, err := p.value()
			if err != nil {
				return nil, err
			}
			values = append(values, v)
			p.space()
			if p.pos < len(p.s) && p.s[p.pos] == ',' {
				p.pos++
				continue
			}
			if p.pos < len(p.s) && p.s[p.pos] == ']' {
				p.pos++
				break
			}
			return nil, p.errorf("Expected matching `]` after the list of field names given to `IN[`")
		}
		return inNode{attr: attr, values: values, not: not}, nil
	case p.keyword("EXISTS"):
		return existsNode{attr: attr, not: not}, nil
	case not:
		return nil, p.errorf("Was expecting `IN` or `EXISTS` after `NOT` at `%s`.", p.s[start:])
	}
	// attr value TO value
	from, _, err := p.value()
	if err == nil && p.keyword("TO") {
		to, _, err := p.value()
		if err != nil {
			return nil, err
		}
		return toNode{attr: attr, from: from, to: to}, nil
	}
	return nil, p.errorf("Was expecting an operation `=`, `!=`, `>=`, `>`, `<=`, `<`, `IN`, `NOT IN`, `TO`, `EXISTS`, `NOT EXISTS`, `IS NULL`, `IS NOT NULL`, `IS EMPTY`, `IS NOT EMPTY`, `CONTAINS`, `NOT CONTAINS`, `STARTS WITH`, `NOT STARTS WITH`, `_geoRadius`, or `_geoBoundingBox` at `%s`.", p.s[start:])
}

// value reads a word or a quoted string.
func (p *filterParser) value() (string, bool, error) {
	p.space()
	if p.pos >= len(p.s) {
		return "", false, p.errorf("Was expecting a value but instead got nothing.")
	}
	if q := p.s[p.pos]; q == '"' || q == '\'' {
		p.pos++
		var b strings.Builder
		for p.pos < len(p.s) {
			c := p.s[p.pos]
			switch {
			case c == '\\':
				if p.pos+1 >= len(p.s) {
					return "", false, p.errorf("Expression `%s` is missing the following closing delimiter: `%c`.", p.s, q)
				}
				b.WriteByte(p.s[p.pos+1])
				p.pos += 2
			case c == q:
				p.pos++
				return b.String(), true, nil
			default:
				b.WriteByte(c)
				p.pos++
			}
		}
		return "", false, p.errorf("Expression `%s` is missing the following closing delimiter: `%c`.", p.s, q)
	}
	start := p.pos
	for p.pos < len(p.s) && isWordChar(rune(p.s[p.pos])) {
		p.pos++
	}
	w := p.s[start:p.pos]
	if w == "" {
		return "", false, p.errorf("Was expecting a value but instead got `%s`.", p.s[start:])
	}
	switch w {
	case "AND", "OR", "IN", "NOT", "TO", "EXISTS", "IS", "NULL", "EMPTY", "CONTAINS", "STARTS", "WITH":
		return "", false, p.errorf("Was expecting a value but instead got `%s`, which is a reserved keyword. To use `%s` as a field name or a value, surround it by quotes.", w, w)
	}
	return w, false, nil
}

func isWordChar(r rune) bool {
	return r == '_' || r == '-' || r == '.' || unicode.IsLetter(r) || unicode.IsDigit(r) || r >= 0x80
}
