package logstore

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/sprout-otel/sprout/internal/logql"
)

// MaxPushSize bounds a decoded push body.
const MaxPushSize = 100 << 20

// DecodePushJSON decodes Loki's JSON push body:
// {"streams":[{"stream":{"k":"v"},"values":[["<unix ns>","line",{"trace_id":"..."}]]}]}.
func DecodePushJSON(body []byte) ([]PushStream, error) {
	var req struct {
		Streams []struct {
			Stream map[string]string `json:"stream"`
			Labels string            `json:"labels"`
			Values []json.RawMessage `json:"values"`
		} `json:"streams"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&req); err != nil {
		return nil, fmt.Errorf("decode JSON push: %w", err)
	}
	out := make([]PushStream, 0, len(req.Streams))
	for i, s := range req.Streams {
		var lbs labels.Labels
		if s.Stream != nil {
			lbs = labels.FromMap(s.Stream)
		} else if s.Labels != "" {
			var err error
			if lbs, err = ParseLabels(s.Labels); err != nil {
				return nil, fmt.Errorf("stream %d: %w", i, err)
			}
		}
		ps := PushStream{Labels: lbs, Entries: make([]logql.Entry, 0, len(s.Values))}
		for j, raw := range s.Values {
			var v []json.RawMessage
			if err := json.Unmarshal(raw, &v); err != nil {
				return nil, fmt.Errorf("stream %d value %d: want [\"<unix epoch in nanoseconds>\", \"<log line>\"]: %w", i, j, err)
			}
			if len(v) < 2 || len(v) > 3 {
				return nil, fmt.Errorf("stream %d value %d: want 2 or 3 elements, got %d", i, j, len(v))
			}
			ts, err := parseJSONTimestamp(v[0])
			if err != nil {
				return nil, fmt.Errorf("stream %d value %d: %w", i, j, err)
			}
			var line string
			if err := json.Unmarshal(v[1], &line); err != nil {
				return nil, fmt.Errorf("stream %d value %d: log line must be a string: %w", i, j, err)
			}
			e := logql.Entry{Timestamp: ts, Line: line, Metadata: labels.EmptyLabels()}
			if len(v) == 3 {
				var md map[string]string
				if err := json.Unmarshal(v[2], &md); err != nil {
					return nil, fmt.Errorf("stream %d value %d: structured metadata must be an object of strings: %w", i, j, err)
				}
				e.Metadata = metadataFromMap(md)
			}
			ps.Entries = append(ps.Entries, e)
		}
		out = append(out, ps)
	}
	return out, nil
}

func metadataFromMap(md map[string]string) labels.Labels {
	if len(md) == 0 {
		return labels.EmptyLabels()
	}
	b := labels.NewScratchBuilder(len(md))
	for k, v := range md {
		b.Add(sanitizeName(k), v)
	}
	b.Sort()
	return b.Labels()
}

func parseJSONTimestamp(raw json.RawMessage) (int64, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		s = string(raw) // a bare number
	}
	ts, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		if t, err2 := time.Parse(time.RFC3339Nano, s); err2 == nil {
			return t.UnixNano(), nil
		}
		return 0, fmt.Errorf("timestamp %s: want a string of unix epoch nanoseconds", string(raw))
	}
	return ts, nil
}

// DecodePushProto decodes Loki's snappy-compressed protobuf push body (logproto.PushRequest).
func DecodePushProto(body []byte) ([]PushStream, error) {
	n, err := snappy.DecodedLen(body)
	if err != nil {
		return nil, fmt.Errorf("snappy: %w", err)
	}
	if n > MaxPushSize {
		return nil, fmt.Errorf("decompressed push of %d bytes exceeds the limit of %d", n, MaxPushSize)
	}
	raw, err := snappy.Decode(nil, body)
	if err != nil {
		return nil, fmt.Errorf("snappy: %w", err)
	}
	return decodePushRequest(raw)
}

func protoErr(what string, n int) error {
	return fmt.Errorf("protobuf: malformed %s: %w", what, protowire.ParseError(n))
}

func decodePushRequest(b []byte) ([]PushStream, error) {
	var out []PushStream
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, protoErr("PushRequest", n)
		}
		b = b[n:]
		if num == 1 && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, protoErr("PushRequest.streams", n)
			}
			b = b[n:]
			ps, err := decodeStream(v)
			if err != nil {
				return nil, err
			}
			out = append(out, ps)
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return nil, protoErr("PushRequest", n)
		}
		b = b[n:]
	}
	return out, nil
}

func decodeStream(b []byte) (PushStream, error) {
	var ps PushStream
	var lstr string
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return ps, protoErr("StreamAdapter", n)
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return ps, protoErr("StreamAdapter.labels", n)
			}
			lstr = string(v)
			b = b[n:]
		case num == 2 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return ps, protoErr("StreamAdapter.entries", n)
			}
			e, err := decodeEntry(v)
			if err != nil {
				return ps, err
			}
			ps.Entries = append(ps.Entries, e)
			b = b[n:]
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return ps, protoErr("StreamAdapter", n)
			}
			b = b[n:]
		}
	}
	lbs, err := ParseLabels(lstr)
	if err != nil {
		return ps, err
	}
	ps.Labels = lbs
	return ps, nil
}

func decodeEntry(b []byte) (logql.Entry, error) {
	e := logql.Entry{Metadata: labels.EmptyLabels()}
	var md []labels.Label
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return e, protoErr("EntryAdapter", n)
		}
		b = b[n:]
		if typ != protowire.BytesType || num < 1 || num > 3 {
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return e, protoErr("EntryAdapter", n)
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return e, protoErr("EntryAdapter", n)
		}
		b = b[n:]
		switch num {
		case 1:
			ts, err := decodeTimestamp(v)
			if err != nil {
				return e, err
			}
			e.Timestamp = ts
		case 2:
			e.Line = string(v)
		case 3:
			l, err := decodeLabelPair(v)
			if err != nil {
				return e, err
			}
			md = append(md, l)
		}
	}
	if len(md) > 0 {
		sb := labels.NewScratchBuilder(len(md))
		for _, l := range md {
			sb.Add(sanitizeName(l.Name), l.Value)
		}
		sb.Sort()
		e.Metadata = sb.Labels()
	}
	return e, nil
}

func decodeTimestamp(b []byte) (int64, error) {
	var sec, nanos int64
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, protoErr("Timestamp", n)
		}
		b = b[n:]
		if typ == protowire.VarintType && (num == 1 || num == 2) {
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return 0, protoErr("Timestamp", n)
			}
			b = b[n:]
			if num == 1 {
				sec = int64(v)
			} else {
				nanos = int64(int32(v))
			}
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return 0, protoErr("Timestamp", n)
		}
		b = b[n:]
	}
	return sec*1e9 + nanos, nil
}

func decodeLabelPair(b []byte) (labels.Label, error) {
	var l labels.Label
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return l, protoErr("LabelPairAdapter", n)
		}
		b = b[n:]
		if typ == protowire.BytesType && (num == 1 || num == 2) {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return l, protoErr("LabelPairAdapter", n)
			}
			b = b[n:]
			if num == 1 {
				l.Name = string(v)
			} else {
				l.Value = string(v)
			}
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return l, protoErr("LabelPairAdapter", n)
		}
		b = b[n:]
	}
	return l, nil
}

// EncodePushProto encodes streams as Loki's snappy-compressed protobuf push body (for clients and tests).
func EncodePushProto(streams []PushStream) []byte {
	var b []byte
	for _, s := range streams {
		var sb []byte
		sb = protowire.AppendTag(sb, 1, protowire.BytesType)
		sb = protowire.AppendString(sb, s.Labels.String())
		for _, e := range s.Entries {
			var eb, tb []byte
			tb = protowire.AppendTag(tb, 1, protowire.VarintType)
			tb = protowire.AppendVarint(tb, uint64(e.Timestamp/1e9))
			tb = protowire.AppendTag(tb, 2, protowire.VarintType)
			tb = protowire.AppendVarint(tb, uint64(e.Timestamp%1e9))
			eb = protowire.AppendTag(eb, 1, protowire.BytesType)
			eb = protowire.AppendBytes(eb, tb)
			eb = protowire.AppendTag(eb, 2, protowire.BytesType)
			eb = protowire.AppendString(eb, e.Line)
			e.Metadata.Range(func(l labels.Label) {
				var lb []byte
				lb = protowire.AppendTag(lb, 1, protowire.BytesType)
				lb = protowire.AppendString(lb, l.Name)
				lb = protowire.AppendTag(lb, 2, protowire.BytesType)
				lb = protowire.AppendString(lb, l.Value)
				eb = protowire.AppendTag(eb, 3, protowire.BytesType)
				eb = protowire.AppendBytes(eb, lb)
			})
			sb = protowire.AppendTag(sb, 2, protowire.BytesType)
			sb = protowire.AppendBytes(sb, eb)
		}
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendBytes(b, sb)
	}
	return snappy.Encode(nil, b)
}

// ParseLabels parses a Prometheus-style label set: {a="b", c="d"}.
func ParseLabels(s string) (labels.Labels, error) {
	orig := s
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "{") || !strings.HasSuffix(s, "}") {
		return labels.EmptyLabels(), fmt.Errorf("error parsing labels %q: want {name=\"value\", ...}", orig)
	}
	s = strings.TrimSpace(s[1 : len(s)-1])
	var ls []labels.Label
	for s != "" {
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return labels.EmptyLabels(), fmt.Errorf("error parsing labels %q: expected name=\"value\"", orig)
		}
		name := strings.TrimSpace(s[:eq])
		rest := strings.TrimSpace(s[eq+1:])
		q, err := strconv.QuotedPrefix(rest)
		if err != nil {
			return labels.EmptyLabels(), fmt.Errorf("error parsing labels %q: value of %s is not a quoted string", orig, name)
		}
		val, _ := strconv.Unquote(q)
		ls = append(ls, labels.Label{Name: name, Value: val})
		s = strings.TrimSpace(rest[len(q):])
		if strings.HasPrefix(s, ",") {
			s = strings.TrimSpace(s[1:])
		} else if s != "" {
			return labels.EmptyLabels(), fmt.Errorf("error parsing labels %q: expected , between labels", orig)
		}
	}
	sort.Slice(ls, func(i, j int) bool { return ls[i].Name < ls[j].Name })
	for i := 1; i < len(ls); i++ {
		if ls[i].Name == ls[i-1].Name {
			return labels.EmptyLabels(), fmt.Errorf("error parsing labels %q: duplicate label name %q", orig, ls[i].Name)
		}
	}
	return labels.New(ls...), nil
}

// DecodePushBody decodes a push by content type and encoding.
func DecodePushBody(r io.Reader, contentType, contentEncoding string) ([]PushStream, error) {
	switch strings.ToLower(contentEncoding) {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		defer zr.Close()
		r = zr
	default:
		return nil, fmt.Errorf("unsupported Content-Encoding %q", contentEncoding)
	}
	body, err := io.ReadAll(io.LimitReader(r, MaxPushSize+1))
	if err != nil {
		return nil, fmt.Errorf("read push body: %w", err)
	}
	if len(body) > MaxPushSize {
		return nil, fmt.Errorf("push body exceeds the limit of %d bytes", MaxPushSize)
	}
	ct := strings.ToLower(strings.TrimSpace(strings.Split(contentType, ";")[0]))
	switch ct {
	case "application/json":
		return DecodePushJSON(body)
	case "", "application/x-protobuf", "application/protobuf":
		return DecodePushProto(body)
	}
	return nil, errors.New("unsupported Content-Type " + strconv.Quote(contentType) + ": want application/json or application/x-protobuf")
}

// sanitizeName makes an attribute key a label name: invalid characters become '_' (service.name → service_name).
func sanitizeName(s string) string {
	ok := s != ""
	for i := 0; i < len(s) && ok; i++ {
		c := s[i]
		ok = c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9'
	}
	if ok {
		return s
	}
	b := []byte(s)
	for i, c := range b {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "_"
	}
	return string(b)
}
