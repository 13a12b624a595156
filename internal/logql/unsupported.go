package logql

import (
	"errors"
	"strings"
)

// unsupported names LogQL constructs that Loki accepts and Sprout does not implement. A query using one fails
// to parse; the error then says which construct it was, so that a client learns the query is valid LogQL that
// Sprout refuses, rather than a typo (tests/diff compares every refusal with Loki's answer).
var unsupported = map[string]string{
	"approx_topk": "approx_topk()",
}

// nameUnsupported adds the unsupported construct found among toks to a parse error.
func nameUnsupported(toks []token, err error) error {
	var pe *ParseError
	if !errors.As(err, &pe) {
		return err
	}
	for _, t := range toks {
		what, ok := unsupported[strings.ToLower(t.text)]
		if !ok || t.kind == tString {
			continue
		}
		return &ParseError{Msg: pe.Msg + " (" + what + " is not supported by Sprout)", Line: pe.Line, Col: pe.Col}
	}
	return err
}
