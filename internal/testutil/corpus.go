package testutil

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// CorpusEntry is one request of a Grafana request corpus (testdata/grafana-corpus.json of a store package): what
// Grafana or one of its apps sends, where its source sends it, and what the answer must hold. Query, Body and
// header values may hold ${NAME} placeholders (${START}, ${END}, ${NOW}, ...) that the replaying test fills in.
type CorpusEntry struct {
	Name    string            `json:"name"`
	Source  string            `json:"source"` // <repo>@<version>:<path>:<line or function>
	Method  string            `json:"method"`
	Path    string            `json:"path"`
	Query   string            `json:"query,omitempty"`
	Body    string            `json:"body,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
	Expect  CorpusExpect      `json:"expect"`
}

// CorpusExpect is what a corpus entry's answer must hold: its status, the dotted paths (into the JSON or YAML
// body; a number indexes a list) that must be present and non-empty, and substrings of the raw body (for
// plain-text answers whose words a client matches, such as Grafana's "no rule groups found").
type CorpusExpect struct {
	Status   int      `json:"status"`
	NonEmpty []string `json:"nonEmpty,omitempty"`
	Contains []string `json:"contains,omitempty"`
}

// LoadCorpus reads a corpus file and checks that every entry names its source, method, path and status.
func LoadCorpus(t testing.TB, path string) []CorpusEntry {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read corpus: %v", err)
	}
	var es []CorpusEntry
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&es); err != nil {
		t.Fatalf("decode corpus %s: %v", path, err)
	}
	seen := map[string]bool{}
	for i, e := range es {
		if e.Name == "" || e.Source == "" || e.Method == "" || !strings.HasPrefix(e.Path, "/") || e.Expect.Status == 0 {
			t.Fatalf("corpus %s entry %d (%q): name, source, method, path and expect.status are required", path, i, e.Name)
		}
		if seen[e.Name] {
			t.Fatalf("corpus %s: entry name %q is used twice", path, e.Name)
		}
		seen[e.Name] = true
	}
	return es
}

// expand fills the ${NAME} placeholders of s from vars; an unknown placeholder is an error.
func expand(s string, vars map[string]string) (string, error) {
	var err error
	out := os.Expand(s, func(k string) string {
		v, ok := vars[k]
		if !ok && err == nil {
			err = fmt.Errorf("unknown placeholder ${%s}", k)
		}
		return v
	})
	return out, err
}

// Request builds the entry's request against base (scheme://host[:port]) with its placeholders filled.
func (e CorpusEntry) Request(base string, vars map[string]string) (*http.Request, error) {
	q, err := expand(e.Query, vars)
	if err != nil {
		return nil, fmt.Errorf("%s: query: %w", e.Name, err)
	}
	body, err := expand(e.Body, vars)
	if err != nil {
		return nil, fmt.Errorf("%s: body: %w", e.Name, err)
	}
	u := base + e.Path
	if q != "" {
		u += "?" + q
	}
	var r io.Reader
	if e.Body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(e.Method, u, r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", e.Name, err)
	}
	for k, v := range e.Headers {
		if v, err = expand(v, vars); err != nil {
			return nil, fmt.Errorf("%s: header %s: %w", e.Name, k, err)
		}
		req.Header.Set(k, v)
	}
	return req, nil
}

// DecodeBody decodes an answer as JSON, or as YAML when it is not JSON (the ruler APIs answer YAML); nil for an
// empty or undecodable body.
func DecodeBody(b []byte) any {
	var v any
	if json.Unmarshal(b, &v) == nil {
		return v
	}
	if yaml.Unmarshal(b, &v) == nil {
		if _, isString := v.(string); !isString {
			return v
		}
	}
	return nil
}

// Lookup follows a dotted path (map keys; numbers index lists) into a decoded body.
func Lookup(doc any, path string) (any, bool) {
	cur := doc
	for _, part := range strings.Split(path, ".") {
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[part]
			if !ok {
				return nil, false
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(part)
			if err != nil || i < 0 || i >= len(c) {
				return nil, false
			}
			cur = c[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

// NonEmpty reports whether v holds something: a non-empty list, map or string, a number or a bool.
func NonEmpty(v any) bool {
	switch v := v.(type) {
	case nil:
		return false
	case []any:
		return len(v) > 0
	case map[string]any:
		return len(v) > 0
	case string:
		return v != ""
	}
	return true
}

// Check compares an answer with the entry's expectations and returns what differs.
func (e CorpusEntry) Check(status int, body []byte) []string {
	var probs []string
	if status != e.Expect.Status {
		probs = append(probs, fmt.Sprintf("status %d, want %d (body %.300s)", status, e.Expect.Status, body))
	}
	doc := DecodeBody(body)
	for _, p := range e.Expect.NonEmpty {
		if v, ok := Lookup(doc, p); !ok || !NonEmpty(v) {
			probs = append(probs, fmt.Sprintf("%s is missing or empty (body %.300s)", p, body))
		}
	}
	for _, c := range e.Expect.Contains {
		if !strings.Contains(string(body), c) {
			probs = append(probs, fmt.Sprintf("body lacks %q (body %.300s)", c, body))
		}
	}
	return probs
}

// ShapeDiff compares the shape of two decoded answers, ours against a peer's: the same keys with values of the
// same JSON type, and non-empty wherever the peer's is non-empty. Lists are compared through their first
// element. It returns one line per difference, each naming its path.
func ShapeDiff(ours, peer any) []string {
	var out []string
	shapeDiff("$", ours, peer, &out)
	return out
}

func kind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case string:
		return "string"
	case bool:
		return "bool"
	case float64, int, int64, uint64:
		return "number"
	}
	return fmt.Sprintf("%T", v)
}

func shapeDiff(path string, ours, peer any, out *[]string) {
	if peer == nil {
		return
	}
	if kind(ours) != kind(peer) {
		*out = append(*out, fmt.Sprintf("%s: %s, peer has %s", path, kind(ours), kind(peer)))
		return
	}
	if NonEmpty(peer) && !NonEmpty(ours) {
		*out = append(*out, fmt.Sprintf("%s: empty, peer's is not", path))
		return
	}
	switch p := peer.(type) {
	case map[string]any:
		o := ours.(map[string]any)
		keys := make([]string, 0, len(p))
		for k := range p {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			ov, ok := o[k]
			if !ok {
				*out = append(*out, fmt.Sprintf("%s.%s: missing, peer has it", path, k))
				continue
			}
			shapeDiff(path+"."+k, ov, p[k], out)
		}
	case []any:
		o := ours.([]any)
		if len(p) > 0 && len(o) > 0 {
			shapeDiff(path+".0", o[0], p[0], out)
		}
	}
}
