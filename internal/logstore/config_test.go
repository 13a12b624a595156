package logstore

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sprout-otel/sprout/internal/bucket"
	"github.com/sprout-otel/sprout/internal/logql"
)

func TestValidateSegmentBytes(t *testing.T) {
	for _, tc := range []struct {
		name          string
		bytes, size   int64
		want          int64
		wantErr, warn string
	}{
		{name: "default", bytes: 128 << 20, want: 128 << 20},
		{name: "segment_bytes", bytes: 2 << 20, want: 2 << 20},
		{name: "deprecated segment_size wins", bytes: 128 << 20, size: 4 << 20, want: 4 << 20, warn: "wal.segment_size is deprecated"},
		{name: "too small", bytes: 1000, wantErr: "wal.segment_bytes: must be at least 1 MiB"},
		{name: "deprecated too small", bytes: 128 << 20, size: -1, wantErr: "wal.segment_size: must be at least 1 MiB (wal.segment_size is deprecated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.WAL.SegmentBytes, cfg.WAL.SegmentSize = tc.bytes, tc.size
			err := cfg.Validate()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Validate: %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, _, warning := cfg.WAL.segmentBytes()
			if got != tc.want || !strings.Contains(warning, tc.warn) || (tc.warn == "") != (warning == "") {
				t.Errorf("segment size %d, warning %q; want %d, %q", got, warning, tc.want, tc.warn)
			}
		})
	}
}

// TestDeprecatedSegmentSizeKey: segment_size, the log store's key before the stores shared one WAL, still sets
// the segment size the WAL rotates at, and a warning at start says so.
func TestDeprecatedSegmentSizeKey(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.FlushCheckPeriod, cfg.CompactionInterval = 3600e9, 3600e9
	cfg.WAL.SegmentSize = 1 << 20 // segment_bytes stays at its default, 128 MiB
	bkt, err := bucket.New(context.Background(), fsBucket(t, filepath.Join(dir, "bucket")), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer bkt.Close()
	core, logs := observer.New(zap.WarnLevel)
	s, err := Open(context.Background(), cfg, bkt, Options{Logger: zap.New(core), Now: (&clock{t: testNow}).Now})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	if n := logs.FilterMessageSnippet("wal.segment_size is deprecated").Len(); n != 1 {
		t.Errorf("%d deprecation warnings for segment_size, want 1: %v", n, logs.All())
	}
	// 1.5 MiB of lines: with segment_size honoured the WAL starts a second segment; at 128 MiB it would not.
	for i := range 15 {
		line := strings.Repeat("x", 100<<10)
		err := s.Push(context.Background(), "t1", []PushStream{{Labels: labels.FromStrings("job", "big"), Entries: []logql.Entry{{Timestamp: ts(i), Line: line}}}})
		if err != nil {
			t.Fatalf("push %d: %v", i, err)
		}
	}
	segs, err := s.wal.Segments()
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) < 2 {
		t.Errorf("WAL segments %v after 1.5 MiB at segment_size 1 MiB, want at least 2", segs)
	}
}
