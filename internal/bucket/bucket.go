// Package bucket is Sprout's object storage seam: the place where the trace, metrics and log stores keep their
// blocks. It is Thanos' objstore.Bucket (Upload, Get, Iter, Delete and friends) behind one Config, with a
// filesystem backend for laptops and single nodes and an S3 backend for anything S3-compatible.
//
// It owns connection set-up, key prefixes and a reachability check at start. It must not know about the formats
// of what is stored.
package bucket

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/filesystem"
	"github.com/thanos-io/objstore/providers/s3"
	"go.opentelemetry.io/collector/config/configopaque"
	"go.uber.org/zap"
)

// Bucket is the interface the stores program against.
type Bucket = objstore.Bucket

// Backends.
const (
	BackendFilesystem = "filesystem"
	BackendS3         = "s3"
)

// Config selects and configures a backend. The zero value plus Default's filesystem directory is valid.
type Config struct {
	// Backend is "filesystem" (default) or "s3".
	Backend string `mapstructure:"backend"`
	// Prefix is prepended to every key, so that several stores can share one bucket (traces/, metrics/, logs/).
	Prefix string `mapstructure:"prefix"`

	Filesystem FilesystemConfig `mapstructure:"filesystem"`
	S3         S3Config         `mapstructure:"s3"`
}

// FilesystemConfig keeps objects as files under Dir.
type FilesystemConfig struct {
	Dir string `mapstructure:"dir"`
}

// S3Config is an S3 or S3-compatible bucket. With no access key, credentials come from the standard AWS chain:
// environment variables, the shared credentials file, then the instance or ECS task role (the container
// credentials endpoint named by AWS_CONTAINER_CREDENTIALS_RELATIVE_URI / _FULL_URI).
type S3Config struct {
	Bucket   string `mapstructure:"bucket"`
	Endpoint string `mapstructure:"endpoint"`
	Region   string `mapstructure:"region"`
	// ForcePathStyle addresses the bucket as endpoint/bucket rather than bucket.endpoint; most S3-compatible
	// servers need it.
	ForcePathStyle bool                `mapstructure:"force_path_style"`
	Insecure       bool                `mapstructure:"insecure"`
	AccessKey      string              `mapstructure:"access_key"`
	SecretKey      configopaque.String `mapstructure:"secret_key"`
	SessionToken   configopaque.String `mapstructure:"session_token"`
	// PartSize for multipart uploads, in bytes; 0 lets the client choose.
	PartSize uint64 `mapstructure:"part_size"`
}

// Validate names the first field that is wrong.
func (c *Config) Validate() error {
	switch c.Backend {
	case "", BackendFilesystem:
		// An empty filesystem.dir is valid here: each store fills in a directory under its own data_dir
		// before it opens the bucket, and New refuses one that is still empty.
	case BackendS3:
		if c.S3.Bucket == "" {
			return errors.New("s3.bucket: must be set for the s3 backend")
		}
		if c.S3.Endpoint == "" {
			return errors.New("s3.endpoint: must be set for the s3 backend (for AWS, s3.<region>.amazonaws.com)")
		}
		if strings.Contains(c.S3.Endpoint, "://") {
			return fmt.Errorf("s3.endpoint: %q must be host[:port] without a scheme; set s3.insecure for plain HTTP", c.S3.Endpoint)
		}
		if (c.S3.AccessKey == "") != (c.S3.SecretKey == "") {
			return errors.New("s3.access_key and s3.secret_key: set both or neither (neither uses the AWS credential chain)")
		}
	default:
		return fmt.Errorf("backend: unknown backend %q (want %q or %q)", c.Backend, BackendFilesystem, BackendS3)
	}
	if strings.HasPrefix(c.Prefix, "/") || strings.Contains(c.Prefix, "..") {
		return fmt.Errorf("prefix: %q must be relative and must not contain ..", c.Prefix)
	}
	return nil
}

// String describes the bucket for logs and error messages.
func (c *Config) String() string {
	var s string
	if c.Backend == BackendS3 {
		s = "s3://" + c.S3.Bucket + " at " + c.S3.Endpoint
	} else {
		s = "file://" + c.Filesystem.Dir
	}
	if c.Prefix != "" {
		s += " prefix " + c.Prefix
	}
	return s
}

// New opens the bucket and checks that it can be reached, so that a wrong endpoint or missing credentials fail
// at start with a message that names the bucket, not at the first block upload.
func New(ctx context.Context, cfg Config, logger *zap.Logger) (Bucket, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("bucket config: %w", err)
	}
	var (
		bkt objstore.Bucket
		err error
	)
	if (cfg.Backend == "" || cfg.Backend == BackendFilesystem) && cfg.Filesystem.Dir == "" {
		return nil, errors.New("bucket config: filesystem.dir: must be set for the filesystem backend")
	}
	switch cfg.Backend {
	case BackendS3:
		bkt, err = s3.NewBucketWithConfig(kitLogger{logger}, s3.Config{
			Bucket:           cfg.S3.Bucket,
			Endpoint:         cfg.S3.Endpoint,
			Region:           cfg.S3.Region,
			Insecure:         cfg.S3.Insecure,
			AccessKey:        cfg.S3.AccessKey,
			SecretKey:        string(cfg.S3.SecretKey),
			SessionToken:     string(cfg.S3.SessionToken),
			BucketLookupType: lookupType(cfg.S3.ForcePathStyle),
			PartSize:         partSize(cfg.S3.PartSize),
			HTTPConfig:       s3.DefaultConfig.HTTPConfig,
			SendContentMd5:   true,
		}, "sprout", nil)
	default:
		if err := os.MkdirAll(cfg.Filesystem.Dir, 0o755); err != nil {
			return nil, fmt.Errorf("bucket %s: create directory: %w", cfg.String(), err)
		}
		if err := checkWritable(cfg.Filesystem.Dir); err != nil {
			return nil, fmt.Errorf("bucket %s: %w", cfg.String(), err)
		}
		bkt, err = filesystem.NewBucket(cfg.Filesystem.Dir)
	}
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", cfg.String(), err)
	}
	probeCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := bkt.Exists(probeCtx, "sprout-probe"); err != nil {
		_ = bkt.Close()
		return nil, fmt.Errorf("bucket %s is not reachable: %w", cfg.String(), err)
	}
	if cfg.Prefix != "" {
		bkt = objstore.NewPrefixedBucket(bkt, strings.TrimSuffix(cfg.Prefix, "/"))
	}
	return bkt, nil
}

func lookupType(pathStyle bool) s3.BucketLookupType {
	if pathStyle {
		return s3.PathLookup
	}
	return s3.AutoLookup
}

func partSize(n uint64) uint64 {
	if n == 0 {
		return s3.DefaultConfig.PartSize
	}
	return n
}

func checkWritable(dir string) error {
	f, err := os.CreateTemp(dir, ".sprout-write-check-*")
	if err != nil {
		return fmt.Errorf("directory %s is not writable: %w", dir, err)
	}
	name := f.Name()
	_ = f.Close()
	return os.Remove(name)
}

// kitLogger adapts zap to the go-kit logger objstore expects.
type kitLogger struct{ l *zap.Logger }

func (k kitLogger) Log(kv ...any) error {
	if k.l == nil {
		return nil
	}
	fields := make([]zap.Field, 0, len(kv)/2)
	msg := ""
	level := "debug"
	for i := 0; i+1 < len(kv); i += 2 {
		key := fmt.Sprint(kv[i])
		switch key {
		case "msg":
			msg = fmt.Sprint(kv[i+1])
		case "level":
			level = fmt.Sprint(kv[i+1])
		default:
			fields = append(fields, zap.Any(key, kv[i+1]))
		}
	}
	switch level {
	case "error":
		k.l.Error(msg, fields...)
	case "warn":
		k.l.Warn(msg, fields...)
	default:
		k.l.Debug(msg, fields...)
	}
	return nil
}

// ReadAll reads a whole object; a convenience for small index files.
func ReadAll(ctx context.Context, b Bucket, name string) ([]byte, error) {
	r, err := b.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// Join builds an object key from parts with forward slashes, whatever the OS.
func Join(parts ...string) string { return filepath.ToSlash(filepath.Join(parts...)) }
