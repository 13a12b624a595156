package logstore

import (
	"bytes"
	"strconv"
	"strings"

	"github.com/buger/jsonparser"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/sprout-otel/sprout/internal/logql"
)

// DetectedLevelLabel is the structured-metadata name of the level discovered at ingest (Loki 3's name).
const DetectedLevelLabel = "detected_level"

// levelFields are the stream labels, structured-metadata names and JSON/logfmt keys read for a level, in order
// of preference (Loki 3's default log_level_fields).
var levelFields = []string{
	"level", "LEVEL", "Level", "log.level",
	"severity", "SEVERITY", "Severity", "SeverityText",
	"lvl", "LVL", "Lvl",
	"severity_text", "Severity_Text", "SEVERITY_TEXT",
}

var levelFieldSet = func() map[string]struct{} {
	m := make(map[string]struct{}, len(levelFields))
	for _, f := range levelFields {
		m[f] = struct{}{}
	}
	return m
}()

// levelJSONMaxDepth is how deep JSON objects are searched for a level key (Loki's default 2).
const levelJSONMaxDepth = 2

// normalizeLevel maps the usual spellings to Loki's level names; ok is false for anything else.
func normalizeLevel(v string) (string, bool) {
	switch strings.ToLower(v) {
	case "trace", "trc":
		return "trace", true
	case "debug", "dbg":
		return "debug", true
	case "info", "inf", "information":
		return "info", true
	case "warn", "wrn", "warning":
		return "warn", true
	case "error", "err":
		return "error", true
	case "critical":
		return "critical", true
	case "fatal":
		return "fatal", true
	}
	return v, false
}

// streamLevel is the level named by a stream label, "" when none of levelFields is a label.
func streamLevel(lbs labels.Labels) (string, bool) {
	for _, f := range levelFields {
		if v := lbs.Get(f); v != "" || lbs.Has(f) {
			n, _ := normalizeLevel(v)
			return n, true
		}
	}
	return "", false
}

// withDetectedLevel returns the entry's metadata with detected_level added, as Loki 3 does when
// discover_log_levels is on: an existing detected_level is kept (normalized); otherwise the level comes from a
// stream label, then a structured-metadata field, then an OTLP severity_number, then a level key of a JSON or
// logfmt line, then the first level keyword in the line, and is "unknown" when nothing names one.
// fromStream is the result of streamLevel for the entry's stream.
func withDetectedLevel(b *labels.Builder, md labels.Labels, line string, fromStream string, hasStream bool) labels.Labels {
	if md.Has(DetectedLevelLabel) {
		v := md.Get(DetectedLevelLabel)
		if n, ok := normalizeLevel(v); ok && n != v {
			b.Reset(md)
			b.Set(DetectedLevelLabel, n)
			return b.Labels()
		}
		return md
	}
	level := fromStream
	if !hasStream {
		level = detectLevel(md, line)
	}
	if level == "" {
		return md
	}
	b.Reset(md)
	b.Set(DetectedLevelLabel, level)
	return b.Labels()
}

func detectLevel(md labels.Labels, line string) string {
	for _, f := range levelFields {
		if md.Has(f) {
			n, _ := normalizeLevel(md.Get(f))
			return n
		}
	}
	if sn := md.Get("severity_number"); sn != "" {
		n, err := strconv.Atoi(sn)
		if err != nil {
			return "info"
		}
		switch {
		case n == 0:
			return "unknown"
		case n <= 4:
			return "trace"
		case n <= 8:
			return "debug"
		case n <= 12:
			return "info"
		case n <= 16:
			return "warn"
		case n <= 20:
			return "error"
		case n <= 24:
			return "fatal"
		}
		return "unknown"
	}
	var v string
	switch {
	case isJSONLine(line):
		v = jsonLevel([]byte(line))
	case strings.IndexByte(line, '=') >= 0:
		v = logfmtLevel(line)
	default:
		return keywordLevel(line)
	}
	if n, ok := normalizeLevel(v); ok {
		return n
	}
	return keywordLevel(line)
}

func isJSONLine(s string) bool {
	s = strings.TrimSpace(s)
	return len(s) >= 2 && s[0] == '{' && s[len(s)-1] == '}'
}

// jsonLevel is the first string value under a level key, searching nested objects up to levelJSONMaxDepth.
func jsonLevel(b []byte) string {
	var res string
	var walk func(data []byte, depth int) bool
	walk = func(data []byte, depth int) bool {
		if depth >= levelJSONMaxDepth {
			return false
		}
		found := false
		_ = jsonparser.ObjectEach(data, func(k, v []byte, t jsonparser.ValueType, _ int) error {
			if found {
				return nil
			}
			switch t {
			case jsonparser.String:
				if _, ok := levelFieldSet[string(k)]; ok {
					res, found = string(v), true
				}
			case jsonparser.Object:
				found = walk(v, depth+1)
			}
			return nil
		})
		return found
	}
	walk(b, 0)
	return res
}

// logfmtLevel scans key=value pairs; keys match levelFields case-insensitively and the earliest field in
// levelFields wins.
func logfmtLevel(s string) string {
	best, res := len(levelFields), ""
	i := 0
	for i < len(s) {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
		ks := i
		for i < len(s) && s[i] != '=' && s[i] != ' ' && s[i] != '\t' {
			i++
		}
		key := s[ks:i]
		var val string
		if i < len(s) && s[i] == '=' {
			i++
			if i < len(s) && s[i] == '"' {
				i++
				vs := i
				for i < len(s) && s[i] != '"' {
					if s[i] == '\\' {
						i++
					}
					i++
				}
				val = s[vs:min(i, len(s))]
				i++
			} else {
				vs := i
				for i < len(s) && s[i] != ' ' && s[i] != '\t' {
					i++
				}
				val = s[vs:i]
			}
		}
		if key == "" {
			i++
			continue
		}
		for x, f := range levelFields[:best] {
			if strings.EqualFold(key, f) {
				best, res = x, val
				if x == 0 {
					return res
				}
				break
			}
		}
	}
	return res
}

var levelWords = []struct{ word, level string }{
	{"trace", "trace"}, {"debug", "debug"}, {"fatal", "fatal"}, {"critical", "critical"},
	{"error", "error"}, {"err", "error"}, {"warning", "warn"}, {"warn", "warn"}, {"info", "info"},
}

func leftBoundary(c byte) bool {
	return bytes.IndexByte([]byte(" \t\n[({\"'=|"), c) >= 0
}

func rightBoundary(c byte) bool {
	return bytes.IndexByte([]byte(" \t\n[](){}:,!\"'=|"), c) >= 0
}

// keywordLevel is the level of the earliest level word standing on its own in the line, "unknown" if none.
func keywordLevel(line string) string {
	low := strings.ToLower(line)
	best, level := len(low), "unknown"
	for _, w := range levelWords {
		off := 0
		for off < len(low) {
			p := strings.Index(low[off:], w.word)
			if p < 0 {
				break
			}
			p += off
			end := p + len(w.word)
			if (p == 0 || leftBoundary(low[p-1])) && (end == len(low) || rightBoundary(low[end])) {
				if p < best {
					best, level = p, w.level
				}
				break
			}
			off = p + 1
		}
		if best == 0 {
			break
		}
	}
	return level
}

// addDetectedLevels sets detected_level on each entry of one stream.
func addDetectedLevels(lbs labels.Labels, es []logql.Entry) {
	lv, has := streamLevel(lbs)
	// Neighbouring lines often carry the same metadata (a trace's lines, or none at all): when the level is
	// the same too, they share the previous line's result instead of building one each, which is both
	// garbage at ingest and memory in the heads.
	var prevIn, prevOut labels.Labels
	havePrev := false
	// One builder for the batch: a new one per line was an eighth of ingest's garbage.
	b := labels.NewBuilder(labels.EmptyLabels())
	for i := range es {
		md := es[i].Metadata
		if havePrev && !md.Has(DetectedLevelLabel) && labels.Equal(md, prevIn) {
			level := lv
			if !has {
				level = detectLevel(md, es[i].Line)
			}
			if level == "" {
				continue
			}
			if prevOut.Get(DetectedLevelLabel) == level {
				es[i].Metadata = prevOut
				continue
			}
		}
		out := withDetectedLevel(b, md, es[i].Line, lv, has)
		prevIn, prevOut, havePrev = md, out, true
		es[i].Metadata = out
	}
}
