// Package rules holds the example rule files (PromQL in *.yaml, LogQL in logql/*.yaml) and embeds them, so that
// `sprout demo` loads them wherever the binary runs, not only inside a checkout.
package rules

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// FS holds the example rule files in the ruler's rule_path layout.
//
//go:embed *.yaml logql/*.yaml
var FS embed.FS

// WriteTo writes the example rules under dir (created if needed) in the ruler's rule_path layout, replacing
// files of the same name, so that a new binary brings its new examples. It returns the files written.
func WriteTo(dir string) ([]string, error) {
	var written []string
	err := fs.WalkDir(FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := FS.ReadFile(p)
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return fmt.Errorf("example rules: %w", err)
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			return fmt.Errorf("example rules: %w", err)
		}
		written = append(written, dst)
		return nil
	})
	return written, err
}
