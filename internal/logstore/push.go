package logstore

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/buger/jsonparser"
	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/sprout-otel/sprout/internal/logql"
	"github.com/sprout-otel/sprout/internal/memguard"
)

// MaxPushSize bounds a decoded push body when the server sets no smaller limit (sprout_api's
// max_request_body_size, 20 MiB by default, is the limit behind the API port).
const MaxPushSize = 100 << 20

// DecodePushJSON decodes Loki's JSON push body:
// {"streams":[{"stream":{"k":"v"},"values":[["<unix ns>","line",{"trace_id":"..."}]]}]}.
func DecodePushJSON(body []byte) ([]PushStream, error) {
	if !json.Valid(body) {
		// Let encoding/json name the problem and its offset.
		var v any
		err := json.Unmarshal(body, &v)
		if err == nil {
			err = errors.New("invalid JSON")
		}
		return nil, fmt.Errorf("decode JSON push: %w", err)
	}
	streamsRaw, typ, _, err := jsonparser.Get(body, "streams")
	if err != nil || typ != jsonparser.Array {
		if typ == jsonparser.NotExist || errors.Is(err, jsonparser.KeyPathNotFoundError) {
			return nil, errors.New("decode JSON push: no \"streams\" array")
		}
		return nil, errors.New("decode JSON push: \"streams\" must be an array")
	}
	var out []PushStream
	var firstErr error
	fail := func(err error) {
		if firstErr == nil {
			firstErr = err
		}
	}
	i := -1
	_, _ = jsonparser.ArrayEach(streamsRaw, func(sv []byte, st jsonparser.ValueType, _ int, _ error) {
		i++
		if firstErr != nil {
			return
		}
		if st != jsonparser.Object {
			fail(fmt.Errorf("stream %d: must be an object", i))
			return
		}
		var ps PushStream
		if lv, lt, _, err := jsonparser.Get(sv, "stream"); err == nil && lt == jsonparser.Object {
			m, err := stringMap(lv)
			if err != nil {
				fail(fmt.Errorf("stream %d: labels: %w", i, err))
				return
			}
			ps.Labels = labels.FromMap(m)
		} else if ls, err := jsonparser.GetString(sv, "labels"); err == nil {
			if ps.Labels, err = ParseLabels(ls); err != nil {
				fail(fmt.Errorf("stream %d: %w", i, err))
				return
			}
		} else {
			ps.Labels = labels.EmptyLabels()
		}
		j := -1
		_, _ = jsonparser.ArrayEach(sv, func(vv []byte, vt jsonparser.ValueType, _ int, _ error) {
			j++
			if firstErr != nil {
				return
			}
			if vt != jsonparser.Array {
				fail(fmt.Errorf("stream %d value %d: want [\"<unix epoch in nanoseconds>\", \"<log line>\"]", i, j))
				return
			}
			e := logql.Entry{Metadata: labels.EmptyLabels()}
			k := -1
			_, _ = jsonparser.ArrayEach(vv, func(x []byte, xt jsonparser.ValueType, _ int, _ error) {
				k++
				if firstErr != nil {
					return
				}
				switch k {
				case 0:
					ts, err := parseTimestampBytes(x, xt)
					if err != nil {
						fail(fmt.Errorf("stream %d value %d: %w", i, j, err))
					}
					e.Timestamp = ts
				case 1:
					if xt != jsonparser.String {
						fail(fmt.Errorf("stream %d value %d: log line must be a string", i, j))
						return
					}
					line, err := jsonparser.ParseString(x)
					if err != nil {
						fail(fmt.Errorf("stream %d value %d: log line: %w", i, j, err))
					}
					e.Line = line
				case 2:
					if xt != jsonparser.Object {
						fail(fmt.Errorf("stream %d value %d: structured metadata must be an object of strings", i, j))
						return
					}
					m, err := stringMap(x)
					if err != nil {
						fail(fmt.Errorf("stream %d value %d: structured metadata: %w", i, j, err))
						return
					}
					e.Metadata = metadataFromMap(m)
				default:
					fail(fmt.Errorf("stream %d value %d: want 2 or 3 elements", i, j))
				}
			})
			if k < 1 && firstErr == nil {
				fail(fmt.Errorf("stream %d value %d: want 2 or 3 elements, got %d", i, j, k+1))
			}
			ps.Entries = append(ps.Entries, e)
		}, "values")
		out = append(out, ps)
	})
	if firstErr != nil {
		return nil, fmt.Errorf("decode JSON push: %w", firstErr)
	}
	return out, nil
}

func stringMap(obj []byte) (map[string]string, error) {
	m := map[string]string{}
	err := jsonparser.ObjectEach(obj, func(k, v []byte, vt jsonparser.ValueType, _ int) error {
		if vt != jsonparser.String {
			return fmt.Errorf("value of %q must be a string", k)
		}
		key, err := jsonparser.ParseString(k)
		if err != nil {
			return err
		}
		val, err := jsonparser.ParseString(v)
		if err != nil {
			return err
		}
		m[key] = val
		return nil
	})
	return m, err
}

func parseTimestampBytes(x []byte, xt jsonparser.ValueType) (int64, error) {
	s := string(x)
	if xt == jsonparser.String {
		var err error
		if s, err = jsonparser.ParseString(x); err != nil {
			return 0, err
		}
	} else if xt != jsonparser.Number {
		return 0, fmt.Errorf("timestamp %s: want a string of unix epoch nanoseconds", s)
	}
	ts, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		if t, err2 := time.Parse(time.RFC3339Nano, s); err2 == nil {
			return t.UnixNano(), nil
		}
		return 0, fmt.Errorf("timestamp %q: want a string of unix epoch nanoseconds", s)
	}
	return ts, nil
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

// DecodePushProto decodes Loki's snappy-compressed protobuf push body (logproto.PushRequest).
func DecodePushProto(body []byte) ([]PushStream, error) {
	return decodePushProto(body, MaxPushSize, nil)
}

// decodePushProto reads the decoded length from the snappy header and refuses a body that would decode past
// limit, or that the memory governor (tk) has no room for, before allocating anything.
func decodePushProto(body []byte, limit int64, tk *memguard.Ticket) ([]PushStream, error) {
	n, err := snappy.DecodedLen(body)
	if err != nil {
		return nil, fmt.Errorf("snappy: %w", err)
	}
	if int64(n) > limit {
		return nil, fmt.Errorf("decompressed push of %d bytes exceeds the limit of %d (the server's max_request_body_size)", n, limit)
	}
	if err := tk.Grow(int64(n)); err != nil {
		return nil, err
	}
	raw, err := snappy.Decode(ingestBufs.get(), body)
	if err != nil {
		return nil, fmt.Errorf("snappy: %w", err)
	}
	// The decoder copies every string it keeps, so raw is free again once it returns.
	streams, err := decodePushRequest(raw)
	ingestBufs.put(raw)
	return streams, err
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
	return decodePushBody(r, contentType, contentEncoding, MaxPushSize, nil)
}

// decodePushBody decodes a push body of at most limit bytes, decoded; snappy bodies grow tk by their decoded
// size before they are decoded.
func decodePushBody(r io.Reader, contentType, contentEncoding string, limit int64, tk *memguard.Ticket) ([]PushStream, error) {
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
	ct := strings.ToLower(strings.TrimSpace(strings.Split(contentType, ";")[0]))
	if ct != "application/json" {
		// A snappy body names its decoded length in its first bytes: one that would decode past the limit is
		// refused without reading the rest. The HTTP server then answers with "Connection: close" and shuts the
		// connection down gracefully, so the client still reads its 400.
		var head [binary.MaxVarintLen64]byte
		n, _ := io.ReadFull(r, head[:])
		if dl, k := binary.Uvarint(head[:n]); k > 0 && dl > uint64(limit) {
			return nil, fmt.Errorf("decompressed push of %d bytes exceeds the limit of %d (the server's max_request_body_size)", dl, limit)
		}
		r = io.MultiReader(bytes.NewReader(head[:n]), r)
	}
	// Both decoders copy what they keep, so the body's buffer goes back to the pool when they return.
	body, err := readAll(io.LimitReader(r, limit+1), ingestBufs.get())
	defer ingestBufs.put(body)
	if err != nil {
		return nil, fmt.Errorf("read push body: %w", err)
	}
	if int64(len(body)) > limit {
		return nil, fmt.Errorf("push body exceeds the limit of %d bytes", limit)
	}
	switch ct {
	case "application/json":
		return DecodePushJSON(body)
	case "", "application/x-protobuf", "application/protobuf":
		return decodePushProto(body, limit, tk)
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
