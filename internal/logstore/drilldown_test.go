package logstore

import (
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestRejectDetectedLabel(t *testing.T) {
	for _, tc := range []struct {
		vals []string
		want bool
	}{
		{nil, true},
		{[]string{"0", "1"}, false}, // a flag
		{[]string{"1"}, false},
		{[]string{"101", "102"}, true}, // numbers: ids
		{[]string{"1", "2", "3"}, true},
		{[]string{"3f2b8c1e-9a4d-4e7f-8b6a-1c2d3e4f5a6b"}, true},
		{[]string{"{3f2b8c1e-9a4d-4e7f-8b6a-1c2d3e4f5a6b}", "urn:uuid:3f2b8c1e-9a4d-4e7f-8b6a-1c2d3e4f5a6b"}, true},
		{[]string{"3f2b8c1e9a4d4e7f8b6a1c2d3e4f5a6b", "7"}, true},
		{[]string{"101", "checkout"}, false},
		{[]string{"3f2b8c1e-9a4d-4e7f-8b6a-1c2d3e4f5a6z"}, false},
	} {
		if got := rejectDetectedLabel(tc.vals); got != tc.want {
			t.Errorf("rejectDetectedLabel(%q) = %v, want %v", tc.vals, got, tc.want)
		}
	}
}

func TestGuessType(t *testing.T) {
	for v, want := range map[string]string{
		"42": "int", "-3": "int", "1.5": "float", "true": "boolean", "F": "boolean", "12ms": "duration",
		"1h30m": "duration", "10KB": "bytes", "1.5 GiB": "bytes", "3 kb": "bytes", "abc": "string", "12 apples": "string",
		"": "string",
	} {
		if got := guessType(v); got != want {
			t.Errorf("guessType(%q) = %s, want %s", v, got, want)
		}
	}
}

// TestDrilldownBadInput: bad parameters are 400 with Loki's texts, never 500.
func TestDrilldownBadInput(t *testing.T) {
	e := newEnv(t, nil)
	rng := func(kv ...string) url.Values {
		v := url.Values{"start": {"1772360000"}, "end": {"1772366000"}}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	for _, tc := range []struct {
		path   string
		params url.Values
		want   string
	}{
		{"/loki/api/v1/detected_labels", rng("query", "{a="), "parse error"},
		{"/loki/api/v1/detected_labels", url.Values{"start": {"tomorrow"}}, `start: cannot parse "tomorrow"`},
		{"/loki/api/v1/detected_fields", rng("query", `{a="b"}`, "line_limit", "0"), "limit must be a positive value"},
		{"/loki/api/v1/detected_fields", rng("query", `{a="b"}`, "limit", "x"), `limit: cannot parse "x"`},
		{"/loki/api/v1/detected_fields", rng(), "query parameter is required"},
		{"/loki/api/v1/detected_field/x/values", rng("query", `{a="b"}`, "line_limit", "100000"), "max entries limit per query exceeded"},
		{"/loki/api/v1/patterns", rng("query", `{a="b"}`, "step", "0"), "zero or negative query resolution step"},
		{"/loki/api/v1/patterns", rng("query", `{a="b"}`, "step", "0.1"), "exceeded maximum resolution of 11,000 points"},
		{"/loki/api/v1/patterns", rng("query", `{a="b"}`, "start", "1772366001"), "end timestamp must not be before"},
		{"/loki/api/v1/patterns", rng("query", `{a="b"}`, "start", "1000"), "the query time range exceeds the limit"},
	} {
		code, b := e.get(tc.path, tc.params)
		if code != 400 || !strings.Contains(string(b), tc.want) {
			t.Errorf("%s %v: %d %q, want 400 with %q", tc.path, tc.params, code, b, tc.want)
		}
	}
}

// TestPatternsFilterRoundTrip: every pattern the patterns endpoint answers, used as Logs Drilldown uses it (a
// |> line filter), finds the lines it was mined from.
func TestPatternsFilterRoundTrip(t *testing.T) {
	e := newEnv(t, nil)
	base := testNow.Add(-time.Minute)
	body, _ := corpusPush(base)
	if code, msg := e.post("/loki/api/v1/push", "application/json", body); code != 204 {
		t.Fatalf("push: %d %s", code, msg)
	}
	rng := url.Values{"start": {base.Add(-15 * time.Minute).Format(time.RFC3339)}, "end": {base.Add(time.Minute).Format(time.RFC3339)}}
	for _, svc := range []string{"checkout", "payments"} {
		p := url.Values{"query": {`{service_name="` + svc + `"}`}, "step": {"60s"}}
		for k, v := range rng {
			p[k] = v
		}
		code, b := e.get("/loki/api/v1/patterns", p)
		var resp struct {
			Data []struct {
				Pattern string     `json:"pattern"`
				Samples [][2]int64 `json:"samples"`
			} `json:"data"`
		}
		if err := json.Unmarshal(b, &resp); code != 200 || err != nil || len(resp.Data) == 0 {
			t.Fatalf("patterns of %s: %d %v %s", svc, code, err, b)
		}
		for _, pt := range resp.Data {
			var mined int64
			for _, s := range pt.Samples {
				mined += s[1]
			}
			q := url.Values{"query": {`sum(count_over_time({service_name="` + svc + `"} |> ` + quoteLogQL(pt.Pattern) + ` [1h]))`}, "time": {base.Add(time.Minute).Format(time.RFC3339)}}
			code, b := e.get("/loki/api/v1/query", q)
			var vr queryResp
			if err := json.Unmarshal(b, &vr); code != 200 || err != nil {
				t.Fatalf("%s: %d %v %s", q.Get("query"), code, err, b)
			}
			var res []struct {
				Value [2]any `json:"value"`
			}
			_ = json.Unmarshal(vr.Data.Result, &res)
			if len(res) != 1 || res[0].Value[1] != jsonNum(mined) {
				t.Errorf("pattern %q mined %d lines; the |> filter finds %s", pt.Pattern, mined, vr.Data.Result)
			}
		}
	}
}

func quoteLogQL(s string) string { return strconv.Quote(s) }

func jsonNum(n int64) string { b, _ := json.Marshal(n); return string(b) }
