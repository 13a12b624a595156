package bucket_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/thanos-io/objstore"
	"go.uber.org/zap"

	"github.com/sprout-otel/sprout/internal/bucket"
	"github.com/sprout-otel/sprout/internal/testutil"
)

// acceptance is the one behaviour every backend must show; it runs against each of them.
func acceptance(t *testing.T, b bucket.Bucket) {
	ctx := context.Background()
	objs := map[string]string{
		"blocks/01/meta.json":  `{"v":1}`,
		"blocks/01/data":       strings.Repeat("x", 1<<20+17),
		"blocks/02/meta.json":  `{"v":2}`,
		"tenants/a/index.json": "[]",
	}
	for k, v := range objs {
		if err := b.Upload(ctx, k, strings.NewReader(v)); err != nil {
			t.Fatalf("upload %s: %v", k, err)
		}
	}
	for k, v := range objs {
		got, err := bucket.ReadAll(ctx, b, k)
		if err != nil || string(got) != v {
			t.Fatalf("get %s: len %d err %v", k, len(got), err)
		}
	}
	r, err := b.GetRange(ctx, "blocks/01/data", 10, 5)
	if err != nil {
		t.Fatalf("get range: %v", err)
	}
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(r)
	r.Close()
	if buf.String() != "xxxxx" {
		t.Fatalf("get range = %q", buf.String())
	}
	attrs, err := b.Attributes(ctx, "blocks/01/data")
	if err != nil || attrs.Size != 1<<20+17 {
		t.Fatalf("attributes: %+v %v", attrs, err)
	}

	var top []string
	if err := b.Iter(ctx, "", func(n string) error { top = append(top, n); return nil }); err != nil {
		t.Fatalf("iter: %v", err)
	}
	sort.Strings(top)
	if strings.Join(top, ",") != "blocks/,tenants/" {
		t.Fatalf("iter top = %v", top)
	}
	var blocks []string
	if err := b.Iter(ctx, "blocks/", func(n string) error { blocks = append(blocks, n); return nil }); err != nil {
		t.Fatalf("iter blocks: %v", err)
	}
	sort.Strings(blocks)
	if strings.Join(blocks, ",") != "blocks/01/,blocks/02/" {
		t.Fatalf("iter blocks = %v", blocks)
	}
	var all []string
	if err := b.Iter(ctx, "blocks/", func(n string) error { all = append(all, n); return nil }, objstore.WithRecursiveIter()); err != nil {
		t.Fatalf("iter recursive: %v", err)
	}
	if len(all) != 3 {
		t.Fatalf("recursive iter = %v", all)
	}

	if err := b.Delete(ctx, "blocks/02/meta.json"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if ok, err := b.Exists(ctx, "blocks/02/meta.json"); err != nil || ok {
		t.Fatalf("exists after delete = %v, %v", ok, err)
	}
	_, err = b.Get(ctx, "nope")
	if err == nil || !b.IsObjNotFoundErr(err) {
		t.Fatalf("get missing: want not-found error, got %v", err)
	}
	if err := b.Upload(ctx, "blocks/01/meta.json", strings.NewReader("v2")); err != nil {
		t.Fatalf("overwrite: %v", err)
	}
	if got, _ := bucket.ReadAll(ctx, b, "blocks/01/meta.json"); string(got) != "v2" {
		t.Fatalf("overwrite read = %q", got)
	}
}

func TestFilesystem(t *testing.T) {
	dir := t.TempDir()
	b, err := bucket.New(context.Background(), bucket.Config{Filesystem: bucket.FilesystemConfig{Dir: dir}, Prefix: "traces"}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	acceptance(t, b)
	if _, err := os.Stat(filepath.Join(dir, "traces", "tenants", "a", "index.json")); err != nil {
		t.Fatalf("prefix not applied on disk: %v", err)
	}
}

func TestS3(t *testing.T) {
	srv := testutil.StartS3(t)
	srv.MakeBucket("sprout")
	cfg := bucket.Config{Backend: bucket.BackendS3, Prefix: "metrics", S3: bucket.S3Config{
		Bucket: "sprout", Endpoint: srv.Endpoint, Region: "us-east-1", Insecure: true, ForcePathStyle: true,
		AccessKey: srv.AccessKey, SecretKey: "sprout-test-secret",
	}}
	b, err := bucket.New(context.Background(), cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	acceptance(t, b)
	// The objects are really on the server, under the prefix.
	if _, err := os.Stat(filepath.Join(srv.Dir, "sprout", "metrics", "tenants", "a", "index.json")); err != nil {
		t.Fatalf("object not on the S3 server's disk: %v", err)
	}
}

func TestS3Unreachable(t *testing.T) {
	port := testutil.FreePort(t)
	cfg := bucket.Config{Backend: bucket.BackendS3, S3: bucket.S3Config{
		Bucket: "sprout", Endpoint: fmt.Sprintf("127.0.0.1:%d", port), Insecure: true, ForcePathStyle: true, AccessKey: "k", SecretKey: "s",
	}}
	_, err := bucket.New(context.Background(), cfg, zap.NewNop())
	if err == nil || !strings.Contains(err.Error(), "not reachable") || !strings.Contains(err.Error(), "s3://sprout") {
		t.Fatalf("want a not-reachable error naming the bucket, got %v", err)
	}
}

func TestUnwritableDir(t *testing.T) {
	if os.Geteuid() == 0 {
		// root ignores permission bits; use a path under a regular file instead.
		f := filepath.Join(t.TempDir(), "file")
		_ = os.WriteFile(f, nil, 0o644)
		_, err := bucket.New(context.Background(), bucket.Config{Filesystem: bucket.FilesystemConfig{Dir: filepath.Join(f, "sub")}}, zap.NewNop())
		if err == nil || !strings.Contains(err.Error(), "file://") {
			t.Fatalf("want error naming the directory, got %v", err)
		}
		return
	}
	dir := t.TempDir()
	_ = os.Chmod(dir, 0o500)
	_, err := bucket.New(context.Background(), bucket.Config{Filesystem: bucket.FilesystemConfig{Dir: dir}}, zap.NewNop())
	if err == nil {
		t.Fatal("want error for unwritable dir")
	}
}

func TestEmptyDirRefusedAtOpen(t *testing.T) {
	if err := (&bucket.Config{}).Validate(); err != nil {
		t.Fatalf("an empty filesystem.dir is filled in by the store, so Validate accepts it: %v", err)
	}
	_, err := bucket.New(context.Background(), bucket.Config{}, zap.NewNop())
	if err == nil || !strings.Contains(err.Error(), "filesystem.dir") {
		t.Fatalf("want an error naming filesystem.dir, got %v", err)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  bucket.Config
		want string
	}{
		{"ok fs", bucket.Config{Filesystem: bucket.FilesystemConfig{Dir: "d"}}, ""},
		{"bad backend", bucket.Config{Backend: "gcs"}, "backend"},
		{"no bucket", bucket.Config{Backend: "s3", S3: bucket.S3Config{Endpoint: "e"}}, "s3.bucket"},
		{"scheme", bucket.Config{Backend: "s3", S3: bucket.S3Config{Bucket: "b", Endpoint: "http://e"}}, "s3.endpoint"},
		{"half creds", bucket.Config{Backend: "s3", S3: bucket.S3Config{Bucket: "b", Endpoint: "e", AccessKey: "k"}}, "secret_key"},
		{"prefix", bucket.Config{Filesystem: bucket.FilesystemConfig{Dir: "d"}, Prefix: "../x"}, "prefix"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want error naming %q, got %v", tc.want, err)
			}
		})
	}
}
