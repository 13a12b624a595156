package traceql

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Pos is a position in a query: 1-based line and column (in runes).
type Pos struct{ Line, Col int }

// ParseError is a syntax or type error with the position it refers to.
type ParseError struct {
	Pos Pos
	Msg string
	// Validation marks a check Tempo makes on the parsed query: its text is Tempo's, without the position
	// (which Pos still holds, for a client that marks the place).
	Validation bool
}

func (e *ParseError) Error() string {
	if e.Pos.Line == 0 || e.Validation {
		return e.Msg
	}
	return fmt.Sprintf("parse error at line %d, col %d: %s", e.Pos.Line, e.Pos.Col, e.Msg)
}

type tokKind int

const (
	tEOF tokKind = iota
	tIdent
	tAttr      // scoped or unscoped attribute; text is the name, scope in tok.scope
	tIntrinsic // scope:intrinsic form, text is the intrinsic, scope the scope
	tString
	tInt
	tFloat
	tDuration
	tOp // punctuation and operators; text is the operator
)

type token struct {
	kind  tokKind
	text  string
	scope string
	pos   Pos
	i     int64
	f     float64
}

func (t token) String() string {
	switch t.kind {
	case tEOF:
		return "end of query"
	case tString:
		return strconv.Quote(t.text)
	case tAttr:
		if t.scope == "" {
			return "." + t.text
		}
		return t.scope + "." + t.text
	case tIntrinsic:
		return t.scope + ":" + t.text
	}
	return "'" + t.text + "'"
}

type lexer struct {
	src  string
	off  int
	line int
	col  int
}

func isAttrRune(r rune) bool {
	if unicode.IsSpace(r) {
		return false
	}
	return !strings.ContainsRune(`{}()=~!<>&|^,"`, r)
}

var attrScopes = map[string]bool{"span": true, "resource": true, "event": true, "link": true, "instrumentation": true, "parent": true}

func (l *lexer) peekRune(k int) rune {
	off := l.off
	var r rune
	for i := 0; i <= k; i++ {
		if off >= len(l.src) {
			return 0
		}
		var w int
		r, w = utf8.DecodeRuneInString(l.src[off:])
		off += w
	}
	return r
}

func (l *lexer) next() rune {
	if l.off >= len(l.src) {
		return 0
	}
	r, w := utf8.DecodeRuneInString(l.src[l.off:])
	l.off += w
	if r == '\n' {
		l.line++
		l.col = 1
	} else {
		l.col++
	}
	return r
}

func (l *lexer) pos() Pos { return Pos{l.line, l.col} }

func (l *lexer) errf(p Pos, format string, args ...any) error {
	return &ParseError{Pos: p, Msg: fmt.Sprintf(format, args...)}
}

var ops3 = []string{"!>>", "!<<", "&>>", "&<<"}
var ops2 = []string{"&&", "||", "!=", ">=", "<=", "=~", "!~", ">>", "<<", "!>", "!<", "&>", "&<", "&~"}

// lex turns the whole query into tokens.
func lex(src string) ([]token, error) {
	if !utf8.ValidString(src) {
		return nil, &ParseError{Pos: Pos{1, 1}, Msg: "query is not valid UTF-8"}
	}
	l := &lexer{src: src, line: 1, col: 1}
	var toks []token
	for {
		for l.off < len(l.src) && unicode.IsSpace(l.peekRune(0)) {
			l.next()
		}
		p := l.pos()
		if l.off >= len(l.src) {
			toks = append(toks, token{kind: tEOF, pos: p})
			return toks, nil
		}
		r := l.peekRune(0)
		switch {
		case r == '"' || r == '`':
			s, err := l.lexString()
			if err != nil {
				return nil, err
			}
			toks = append(toks, token{kind: tString, text: s, pos: p})
		case r >= '0' && r <= '9':
			t, err := l.lexNumber()
			if err != nil {
				return nil, err
			}
			toks = append(toks, t)
		case r == '.' && (isAttrRune(l.peekRune(1)) || l.peekRune(1) == '"') && l.peekRune(1) != 0:
			l.next()
			name, err := l.lexAttrName()
			if err != nil {
				return nil, err
			}
			toks = append(toks, token{kind: tAttr, text: name, pos: p})
		case r == '_' || unicode.IsLetter(r):
			start := l.off
			word := l.src[start:l.scanWord()]
			if attrScopes[word] && l.peekRune(0) == '.' {
				l.next()
				name, err := l.lexAttrName()
				if err != nil {
					return nil, err
				}
				toks = append(toks, token{kind: tAttr, scope: word, text: name, pos: p})
				continue
			}
			if (word == "span" || word == "trace" || word == "event" || word == "link" || word == "instrumentation") && l.peekRune(0) == ':' {
				l.next()
				s := l.off
				if l.scanWord() == s {
					return nil, l.errf(l.pos(), "expected an intrinsic name after %s:", word)
				}
				toks = append(toks, token{kind: tIntrinsic, scope: word, text: l.src[s:l.off], pos: p})
				continue
			}
			toks = append(toks, token{kind: tIdent, text: word, pos: p})
		default:
			matched := false
			for _, set := range [][]string{ops3, ops2} {
				for _, op := range set {
					if strings.HasPrefix(l.src[l.off:], op) {
						for range op {
							l.next()
						}
						toks = append(toks, token{kind: tOp, text: op, pos: p})
						matched = true
						break
					}
				}
				if matched {
					break
				}
			}
			if matched {
				continue
			}
			if strings.ContainsRune("{}()|,=<>!~+-*/%^.", r) {
				l.next()
				toks = append(toks, token{kind: tOp, text: string(r), pos: p})
				continue
			}
			return nil, l.errf(p, "unexpected character %q", r)
		}
	}
}

// scanWord moves past letters, digits and underscores and returns the offset after them.
func (l *lexer) scanWord() int {
	for l.off < len(l.src) {
		c := l.peekRune(0)
		if c != '_' && !unicode.IsLetter(c) && !unicode.IsDigit(c) {
			break
		}
		l.next()
	}
	return l.off
}

func (l *lexer) lexAttrName() (string, error) {
	p := l.pos()
	if l.peekRune(0) == '"' {
		return l.lexString()
	}
	start := l.off
	for l.off < len(l.src) && isAttrRune(l.peekRune(0)) {
		l.next()
	}
	if start == l.off {
		return "", l.errf(p, "expected an attribute name")
	}
	return l.src[start:l.off], nil
}

func (l *lexer) lexString() (string, error) {
	p := l.pos()
	q := l.next()
	var b strings.Builder
	for {
		if l.off >= len(l.src) {
			return "", l.errf(p, "unterminated string")
		}
		r := l.next()
		if r == q {
			return b.String(), nil
		}
		if r == '\\' && q == '"' {
			e := l.next()
			switch e {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			case '\\', '"', '\'':
				b.WriteRune(e)
			case 0:
				return "", l.errf(p, "unterminated string")
			default:
				// keep unknown escapes as written, so regexes such as "\d+" work
				b.WriteByte('\\')
				b.WriteRune(e)
			}
			continue
		}
		b.WriteRune(r)
	}
}

func (l *lexer) lexNumber() (token, error) {
	p := l.pos()
	start := l.off
	isFloat := false
	for l.off < len(l.src) {
		c := l.peekRune(0)
		if c >= '0' && c <= '9' {
			l.next()
			continue
		}
		if c == '.' && !isFloat {
			n := l.peekRune(1)
			if n >= '0' && n <= '9' {
				isFloat = true
				l.next()
				continue
			}
		}
		break
	}
	c := l.peekRune(0)
	if unicode.IsLetter(c) || c == 'µ' {
		// a duration: digits and units, e.g. 1h30m, 1.5s, 200ms, 10us
		for l.off < len(l.src) {
			c := l.peekRune(0)
			if unicode.IsLetter(c) || unicode.IsDigit(c) || c == '.' || c == 'µ' {
				l.next()
				continue
			}
			break
		}
		text := l.src[start:l.off]
		d, err := time.ParseDuration(text)
		if err != nil {
			return token{}, l.errf(p, "invalid duration %q", text)
		}
		return token{kind: tDuration, text: text, i: int64(d), pos: p}, nil
	}
	text := l.src[start:l.off]
	if isFloat {
		f, err := strconv.ParseFloat(text, 64)
		if err != nil {
			return token{}, l.errf(p, "invalid number %q", text)
		}
		return token{kind: tFloat, text: text, f: f, pos: p}, nil
	}
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		return token{}, l.errf(p, "invalid integer %q: %v", text, err.(*strconv.NumError).Err)
	}
	return token{kind: tInt, text: text, i: n, pos: p}, nil
}
