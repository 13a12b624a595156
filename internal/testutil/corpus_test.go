package testutil

import (
	"strings"
	"testing"
)

func TestCorpusChecks(t *testing.T) {
	body := []byte(`{"status":"success","data":{"groups":[{"name":"g","rules":[]}],"alerts":[{"labels":{"alertname":"A"}}]}}`)
	for _, tc := range []struct {
		expect CorpusExpect
		status int
		probs  int
	}{
		{CorpusExpect{Status: 200, NonEmpty: []string{"data.groups.0.name", "data.alerts.0.labels.alertname"}, Contains: []string{`"success"`}}, 200, 0},
		{CorpusExpect{Status: 200, NonEmpty: []string{"data.groups.0.rules"}}, 200, 1},             // empty list
		{CorpusExpect{Status: 200, NonEmpty: []string{"data.groups.1.name", "data.nope"}}, 200, 2}, // out of range, missing
		{CorpusExpect{Status: 404, Contains: []string{"no rule groups found"}}, 200, 2},
	} {
		if got := (CorpusEntry{Name: "x", Expect: tc.expect}).Check(tc.status, body); len(got) != tc.probs {
			t.Errorf("%+v: problems %q, want %d", tc.expect, got, tc.probs)
		}
	}
	// YAML answers (the ruler APIs) are looked into the same way.
	if got := (CorpusEntry{Expect: CorpusExpect{Status: 200, NonEmpty: []string{"ns.0.rules.0.alert"}}}).Check(200, []byte("ns:\n  - name: g\n    rules:\n      - alert: A\n")); len(got) != 0 {
		t.Errorf("yaml: %q", got)
	}
}

func TestCorpusRequest(t *testing.T) {
	e := CorpusEntry{Name: "q", Method: "POST", Path: "/api/v1/query", Query: "a=${START}", Body: "t=${NOW}", Headers: map[string]string{"X": "${END}"}}
	req, err := e.Request("http://h", map[string]string{"START": "1", "NOW": "2", "END": "3"})
	if err != nil || req.URL.String() != "http://h/api/v1/query?a=1" || req.Header.Get("X") != "3" {
		t.Fatalf("request = %v %v", req, err)
	}
	if _, err := e.Request("http://h", map[string]string{}); err == nil || !strings.Contains(err.Error(), "${START}") {
		t.Fatalf("unknown placeholder: %v", err)
	}
}

func TestShapeDiff(t *testing.T) {
	peer := DecodeBody([]byte(`{"data":{"groups":[{"name":"g","rules":[{"health":"ok"}]}],"n":1}}`))
	for _, tc := range []struct {
		ours string
		want []string
	}{
		{`{"data":{"groups":[{"name":"h","rules":[{"health":"err"}],"extra":true}],"n":2}}`, nil},
		{`{"data":{"groups":[],"n":"1"}}`, []string{"$.data.groups: empty", "$.data.n: string, peer has number"}},
		{`{"data":{"groups":[{"rules":[{}]}],"n":1}}`, []string{"$.data.groups.0.name: missing", "$.data.groups.0.rules.0: empty"}},
	} {
		got := ShapeDiff(DecodeBody([]byte(tc.ours)), peer)
		if len(got) != len(tc.want) {
			t.Errorf("%s: %q, want %q", tc.ours, got, tc.want)
			continue
		}
		for i := range got {
			if !strings.HasPrefix(got[i], tc.want[i]) {
				t.Errorf("%s: %q, want %q", tc.ours, got[i], tc.want[i])
			}
		}
	}
}

func FuzzCorpusBody(f *testing.F) {
	f.Add([]byte(`{"data":{"result":[{"metric":{}}]}}`), "data.result.0.metric")
	f.Add([]byte("ns:\n  - name: g\n"), "ns.0.name")
	f.Add([]byte("no rule groups found\n"), "a.-1")
	f.Fuzz(func(t *testing.T, body []byte, path string) {
		doc := DecodeBody(body)
		_, _ = Lookup(doc, path)
		_ = ShapeDiff(doc, doc)
	})
}
