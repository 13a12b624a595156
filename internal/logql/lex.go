// Package logql parses and evaluates LogQL, the query language of Loki, over any store that can hand it the
// entries of the streams a selector matches. It owns the grammar, the per-line pipeline (filters, parsers,
// formatters) and the metric evaluation (range and vector aggregations, binary operations). It must not know
// how or where entries are stored.
package logql

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

type tokKind int

const (
	tEOF tokKind = iota
	tIdent
	tString
	tNumber
	tDuration
	tBytes
	tLBrace
	tRBrace
	tLParen
	tRParen
	tLBrack
	tRBrack
	tComma
	tDot
	tEq      // =
	tNeq     // !=
	tRe      // =~
	tNre     // !~
	tPipeEq  // |=
	tPipeRe  // |~
	tPipe    // |
	tEqEq    // ==
	tGt      // >
	tGte     // >=
	tLt      // <
	tLte     // <=
	tAdd     // +
	tSub     // -
	tMul     // *
	tDiv     // /
	tMod     // %
	tPow     // ^
	tFlagArg // --strict
	tPipePat // |> (pattern line filter)
	tNpat    // !> (negated pattern line filter)
)

var tokNames = map[tokKind]string{
	tEOF: "end of input", tIdent: "IDENTIFIER", tString: "STRING", tNumber: "NUMBER", tDuration: "DURATION",
	tBytes: "BYTES", tLBrace: "{", tRBrace: "}", tLParen: "(", tRParen: ")", tLBrack: "[", tRBrack: "]",
	tComma: ",", tDot: ".", tEq: "=", tNeq: "!=", tRe: "=~", tNre: "!~", tPipeEq: "|=", tPipeRe: "|~", tPipe: "|",
	tEqEq: "==", tGt: ">", tGte: ">=", tLt: "<", tLte: "<=", tAdd: "+", tSub: "-", tMul: "*", tDiv: "/",
	tMod: "%", tPow: "^", tFlagArg: "FLAG", tPipePat: "|>", tNpat: "!>",
}

func (k tokKind) String() string { return tokNames[k] }

type token struct {
	kind tokKind
	text string // raw text; for strings the unquoted value
	line int
	col  int
}

func (t token) describe() string {
	switch t.kind {
	case tEOF:
		return "$end"
	case tIdent:
		if isKeyword(t.text) {
			return strings.ToUpper(t.text)
		}
		return "IDENTIFIER"
	case tString, tNumber, tDuration, tBytes:
		return t.kind.String()
	}
	return t.kind.String()
}

// ParseError is a syntax or semantic error with the position of the offending token, formatted as Loki does.
type ParseError struct {
	Msg  string
	Line int
	Col  int
}

func (e *ParseError) Error() string {
	if e.Line == 0 {
		return "parse error : " + e.Msg
	}
	return fmt.Sprintf("parse error at line %d, col %d: %s", e.Line, e.Col, e.Msg)
}

func lex(input string) ([]token, error) {
	var toks []token
	line, col := 1, 1
	i := 0
	adv := func(n int) {
		for j := 0; j < n && i < len(input); j++ {
			if input[i] == '\n' {
				line++
				col = 1
			} else if input[i] < utf8.RuneSelf || utf8.RuneStart(input[i]) {
				col++
			}
			i++
		}
	}
	for i < len(input) {
		c := input[i]
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
			adv(1)
			continue
		}
		if c == '#' { // comment to end of line
			for i < len(input) && input[i] != '\n' {
				adv(1)
			}
			continue
		}
		start := token{line: line, col: col}
		two := ""
		if i+1 < len(input) {
			two = input[i : i+2]
		}
		emit := func(k tokKind, n int) {
			start.kind, start.text = k, input[i:i+n]
			toks = append(toks, start)
			adv(n)
		}
		switch two {
		case "!=":
			emit(tNeq, 2)
			continue
		case "=~":
			emit(tRe, 2)
			continue
		case "!~":
			emit(tNre, 2)
			continue
		case "|=":
			emit(tPipeEq, 2)
			continue
		case "|~":
			emit(tPipeRe, 2)
			continue
		case "|>":
			emit(tPipePat, 2)
			continue
		case "!>":
			emit(tNpat, 2)
			continue
		case "==":
			emit(tEqEq, 2)
			continue
		case ">=":
			emit(tGte, 2)
			continue
		case "<=":
			emit(tLte, 2)
			continue
		case "--":
			j := i + 2
			for j < len(input) && (isIdentChar(rune(input[j])) || input[j] == '-') {
				j++
			}
			emit(tFlagArg, j-i)
			continue
		}
		switch c {
		case '{':
			emit(tLBrace, 1)
		case '}':
			emit(tRBrace, 1)
		case '(':
			emit(tLParen, 1)
		case ')':
			emit(tRParen, 1)
		case '[':
			emit(tLBrack, 1)
		case ']':
			emit(tRBrack, 1)
		case ',':
			emit(tComma, 1)
		case '=':
			emit(tEq, 1)
		case '|':
			emit(tPipe, 1)
		case '>':
			emit(tGt, 1)
		case '<':
			emit(tLt, 1)
		case '+':
			emit(tAdd, 1)
		case '-':
			emit(tSub, 1)
		case '*':
			emit(tMul, 1)
		case '/':
			emit(tDiv, 1)
		case '%':
			emit(tMod, 1)
		case '^':
			emit(tPow, 1)
		case '"', '`':
			j := i + 1
			if c == '`' {
				for j < len(input) && input[j] != '`' {
					j++
				}
			} else {
				for j < len(input) && input[j] != '"' {
					if input[j] == '\\' {
						j++
					}
					j++
				}
			}
			if j >= len(input) {
				return nil, &ParseError{Msg: "syntax error: unterminated string", Line: line, Col: col}
			}
			raw := input[i : j+1]
			val := raw[1 : len(raw)-1]
			if c == '"' {
				u, err := strconv.Unquote(raw)
				if err != nil {
					return nil, &ParseError{Msg: "syntax error: invalid string " + raw + ": " + err.Error(), Line: line, Col: col}
				}
				val = u
			}
			start.kind, start.text = tString, val
			toks = append(toks, start)
			adv(j + 1 - i)
		default:
			r, _ := utf8.DecodeRuneInString(input[i:])
			switch {
			case c >= '0' && c <= '9' || (c == '.' && i+1 < len(input) && input[i+1] >= '0' && input[i+1] <= '9'):
				j := i
				for j < len(input) && (isIdentChar(rune(input[j])) || input[j] == '.') {
					j++
				}
				// Exponents: 1e-3, 2E+4.
				if j < len(input) && (input[j] == '-' || input[j] == '+') && j > i && (input[j-1] == 'e' || input[j-1] == 'E') {
					k := j + 1
					for k < len(input) && input[k] >= '0' && input[k] <= '9' {
						k++
					}
					if k > j+1 {
						j = k
					}
				}
				text := input[i:j]
				kind := tNumber
				if _, err := strconv.ParseFloat(text, 64); err != nil {
					if _, err := parseDuration(text); err == nil {
						kind = tDuration
					} else if _, err := parseBytes(text); err == nil {
						kind = tBytes
					} else {
						return nil, &ParseError{Msg: "syntax error: unexpected " + strconv.Quote(text), Line: line, Col: col}
					}
				}
				emit(kind, j-i)
			case unicode.IsLetter(r) || c == '_':
				j := i
				for j < len(input) {
					r2, n := utf8.DecodeRuneInString(input[j:])
					if !isIdentChar(r2) {
						break
					}
					j += n
				}
				emit(tIdent, j-i)
			default:
				return nil, &ParseError{Msg: fmt.Sprintf("syntax error: unexpected character %q", r), Line: line, Col: col}
			}
		}
	}
	toks = append(toks, token{kind: tEOF, line: line, col: col})
	return toks, nil
}

func isIdentChar(r rune) bool {
	return r == '_' || r == ':' || unicode.IsLetter(r) || unicode.IsDigit(r)
}

var keywords = map[string]bool{
	"by": true, "without": true, "and": true, "or": true, "unless": true, "bool": true, "offset": true,
	"on": true, "ignoring": true, "group_left": true, "group_right": true,
}

func isKeyword(s string) bool { return keywords[s] }
