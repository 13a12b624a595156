package testutil

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// SourceKey hashes what a binary of the Go module at root is built from: every .go file that is not a test
// (outside testdata, hidden and node_modules directories), go.mod, go.sum, and the files those .go files name
// in //go:embed lines. Tests that build the binary and run it call it so that `go test` caches their result
// on the source: the go command records every file a test opens, and a cached result is used only while
// those files are unchanged. The key also says whether a binary built earlier is still current.
func SourceKey(root string) (string, error) {
	files := map[string]bool{filepath.Join(root, "go.mod"): true, filepath.Join(root, "go.sum"): true}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (name == "testdata" || name == "node_modules" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") || !d.Type().IsRegular() {
			return nil
		}
		files[path] = true
		embeds, err := embedPatterns(path)
		if err != nil {
			return err
		}
		for _, pat := range embeds {
			if err := addEmbedded(files, filepath.Dir(path), pat); err != nil {
				return fmt.Errorf("%s: //go:embed %s: %w", path, pat, err)
			}
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("source key of %s: %w", root, err)
	}
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	h := sha256.New()
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return "", fmt.Errorf("source key of %s: %w", root, err)
		}
		rel, _ := filepath.Rel(root, p)
		fmt.Fprintf(h, "%s %d\n", filepath.ToSlash(rel), len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// embedPatterns returns the patterns of the //go:embed lines of a Go file.
func embedPatterns(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pats, err := parseEmbeds(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return pats, nil
}

// parseEmbeds returns the patterns of the //go:embed lines of Go source: space-separated, or quoted as Go
// strings.
func parseEmbeds(b []byte) ([]string, error) {
	if !bytes.Contains(b, []byte("//go:embed")) {
		return nil, nil
	}
	var pats []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "//go:embed")
		if !ok || (rest != "" && rest[0] != ' ' && rest[0] != '\t') {
			continue
		}
		for rest = strings.TrimSpace(rest); rest != ""; rest = strings.TrimSpace(rest) {
			if rest[0] == '"' || rest[0] == '`' {
				q, err := strconv.QuotedPrefix(rest)
				if err != nil {
					return nil, fmt.Errorf("//go:embed: %w", err)
				}
				uq, _ := strconv.Unquote(q)
				pats = append(pats, uq)
				rest = rest[len(q):]
				continue
			}
			end := strings.IndexAny(rest, " \t")
			if end < 0 {
				end = len(rest)
			}
			pats = append(pats, rest[:end])
			rest = rest[end:]
		}
	}
	return pats, sc.Err()
}

// addEmbedded adds the files that pattern (relative to dir) embeds: matching files, and every file under a
// matching directory.
func addEmbedded(files map[string]bool, dir, pattern string) error {
	matches, err := filepath.Glob(filepath.Join(dir, filepath.FromSlash(strings.TrimPrefix(pattern, "all:"))))
	if err != nil {
		return err
	}
	for _, m := range matches {
		err := filepath.WalkDir(m, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.Type().IsRegular() {
				files[path] = true
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}
