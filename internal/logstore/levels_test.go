package logstore

import (
	"context"
	"encoding/json"
	"os"
	"testing"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/sprout-otel/sprout/internal/logql"
)

type levelCase struct {
	Name     string            `json:"name"`
	Labels   string            `json:"labels"`
	Metadata map[string]string `json:"metadata"`
	Line     string            `json:"line"`
	Want     string            `json:"want"` // "" = no detected_level
}

func loadLevelCases(t testing.TB) []levelCase {
	b, err := os.ReadFile("testdata/detected_level.json")
	if err != nil {
		t.Fatal(err)
	}
	var cs []levelCase
	if err := json.Unmarshal(b, &cs); err != nil {
		t.Fatal(err)
	}
	return cs
}

func TestDetectedLevel(t *testing.T) {
	for _, c := range loadLevelCases(t) {
		t.Run(c.Name, func(t *testing.T) {
			lbs, err := ParseLabels(c.Labels)
			if err != nil {
				t.Fatal(err)
			}
			es := []logql.Entry{{Line: c.Line, Metadata: labels.FromMap(c.Metadata)}}
			addDetectedLevels(lbs, es)
			got, has := es[0].Metadata.Get(DetectedLevelLabel), es[0].Metadata.Has(DetectedLevelLabel)
			if c.Want == "" {
				if has {
					t.Fatalf("detected_level = %q, want none", got)
				}
				return
			}
			if got != c.Want {
				t.Fatalf("detected_level = %q, want %q", got, c.Want)
			}
		})
	}
}

// TestDetectedLevelPushSwitch pushes through the store with discover_log_levels on and off and reads the
// line's metadata back.
func TestDetectedLevelPushSwitch(t *testing.T) {
	for _, on := range []bool{true, false} {
		e := newEnv(t, func(c *Config) { c.Limits.DiscoverLogLevels = on })
		st := e.store
		lbs, _ := ParseLabels(`{job="a"}`)
		now := e.clk.Now().UnixNano()
		if err := st.Push(context.Background(), "t1", []PushStream{{Labels: lbs, Entries: []logql.Entry{{Timestamp: now, Line: "level=error boom", Metadata: labels.EmptyLabels()}}}}); err != nil {
			t.Fatal(err)
		}
		var got []labels.Labels
		ms := []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "job", "a")}
		err := st.Querier("t1").SelectLogs(context.Background(), logql.SelectParams{Start: now - 1, End: now + 1, Matchers: ms}, func(_ labels.Labels, e logql.Entry) error {
			got = append(got, e.Metadata)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 {
			t.Fatalf("discover=%v: %d lines, want 1", on, len(got))
		}
		if v := got[0].Get(DetectedLevelLabel); (on && v != "error") || (!on && v != "") {
			t.Fatalf("discover=%v: detected_level = %q", on, v)
		}
	}
}

func BenchmarkDetectedLevel(b *testing.B) {
	cs := loadLevelCases(b)
	lbs, _ := ParseLabels(`{job="a"}`)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		c := cs[i%len(cs)]
		es := []logql.Entry{{Line: c.Line, Metadata: labels.EmptyLabels()}}
		addDetectedLevels(lbs, es)
	}
}

// TestDetectedLevelsShareNeighbours checks that lines sharing their neighbour's result (same metadata, same
// level) get exactly what each would get on its own.
func TestDetectedLevelsShareNeighbours(t *testing.T) {
	tid := labels.FromStrings("trace_id", "0af7651916cd43dd8448eb211c80319c")
	for _, tc := range []struct {
		name   string
		stream labels.Labels
		es     []logql.Entry
	}{
		{"same metadata, levels from the lines", labels.FromStrings("app", "a"), []logql.Entry{
			{Line: "level=info ok", Metadata: tid}, {Line: "level=info ok 2", Metadata: tid},
			{Line: "level=error bad", Metadata: tid}, {Line: "no level here", Metadata: tid},
			{Line: "no level here", Metadata: labels.EmptyLabels()}, {Line: "warn: x", Metadata: labels.EmptyLabels()},
		}},
		{"level from the stream", labels.FromStrings("app", "a", "level", "WARNING"), []logql.Entry{
			{Line: "a", Metadata: tid}, {Line: "b", Metadata: tid}, {Line: "c", Metadata: labels.EmptyLabels()},
		}},
		{"existing detected_level kept or normalized", labels.FromStrings("app", "a"), []logql.Entry{
			{Line: "error", Metadata: labels.FromStrings(DetectedLevelLabel, "WARN")},
			{Line: "error", Metadata: labels.FromStrings(DetectedLevelLabel, "WARN")},
			{Line: "error", Metadata: labels.FromStrings(DetectedLevelLabel, "debug")},
		}},
		{"empty stream level label", labels.FromStrings("app", "a", "level", ""), []logql.Entry{
			{Line: "error", Metadata: tid}, {Line: "error", Metadata: tid},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lv, has := streamLevel(tc.stream)
			want := make([]labels.Labels, len(tc.es))
			for i, e := range tc.es {
				want[i] = withDetectedLevel(labels.NewBuilder(labels.EmptyLabels()), e.Metadata, e.Line, lv, has)
			}
			addDetectedLevels(tc.stream, tc.es)
			for i, e := range tc.es {
				if !labels.Equal(e.Metadata, want[i]) {
					t.Errorf("line %d %q: metadata %s, want %s", i, e.Line, e.Metadata, want[i])
				}
			}
		})
	}
}
