package tenant

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// LayoutDir is the directory of a store's data directory that holds one subdirectory per tenant. Nothing of
// the store's own lives in it, so that every valid id ("blocks", "wal", "silences", "nflog", "tenants" …) is
// an ordinary tenant name.
const LayoutDir = "tenants"

// layoutMarker, inside LayoutDir, says the directory is the per-tenant parent and not the state of a tenant
// named "tenants" from before it. Its dot keeps it from ever being a tenant.
const layoutMarker = ".sprout-layout"

// stagingDir collects the tenants of a migration until it is complete.
const stagingDir = ".tenants-migrating"

// Layout returns <root>/tenants, the parent of the tenants' directories, after moving the per-tenant state of
// the earlier layout (<root>/<tenant>/…, beside the store's own directories) into it. parts is asked about
// each entry of root: it returns nil when the entry is not an earlier tenant's state, [""] to move the whole
// directory, or the names of the entries under <root>/<name> that are the tenant's (a tenant whose directory
// was also the store's own, such as the trace store's "blocks", gives up only its WAL).
//
// The migration survives a crash at any point: tenants are gathered in <root>/.tenants-migrating, which gets
// the marker and then becomes <root>/tenants in one rename. A run over a complete layout moves nothing.
func Layout(root string, parts func(name string, isDir bool) []string) (string, error) {
	dst := filepath.Join(root, LayoutDir)
	if _, err := os.Stat(filepath.Join(dst, layoutMarker)); err == nil {
		return dst, nil
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", root, err)
	}
	staging := filepath.Join(root, stagingDir)
	if err := os.MkdirAll(staging, 0o755); err != nil {
		return "", fmt.Errorf("migrate tenant layout: %w", err)
	}
	ents, err := os.ReadDir(root)
	if err != nil {
		return "", fmt.Errorf("migrate tenant layout: read %s: %w", root, err)
	}
	for _, e := range ents {
		name := e.Name()
		if name == stagingDir || Validate(name) != nil {
			continue
		}
		ps := parts(name, e.IsDir())
		if len(ps) == 0 {
			continue
		}
		if err := moveTenant(root, staging, name, ps); err != nil {
			return "", err
		}
	}
	if err := os.WriteFile(filepath.Join(staging, layoutMarker), []byte("tenants/<id>/\n"), 0o644); err != nil {
		return "", fmt.Errorf("migrate tenant layout: %w", err)
	}
	if err := syncDir(staging); err != nil {
		return "", err
	}
	// An empty <root>/tenants that is no tenant's (made by hand, or a tenant with nothing in it) is in the way.
	if err := os.Remove(dst); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("migrate tenant layout: %s is in the way: %w", dst, err)
	}
	if err := os.Rename(staging, dst); err != nil {
		return "", fmt.Errorf("migrate tenant layout: %w", err)
	}
	if err := syncDir(root); err != nil {
		return "", err
	}
	return dst, nil
}

func moveTenant(root, staging, name string, parts []string) error {
	if len(parts) == 1 && parts[0] == "" {
		if _, err := os.Stat(filepath.Join(staging, name)); err == nil {
			return fmt.Errorf("migrate tenant %s: %s already holds it", name, staging)
		}
		if err := os.Rename(filepath.Join(root, name), filepath.Join(staging, name)); err != nil {
			return fmt.Errorf("migrate tenant %s: %w", name, err)
		}
		return nil
	}
	if err := os.MkdirAll(filepath.Join(staging, name), 0o755); err != nil {
		return fmt.Errorf("migrate tenant %s: %w", name, err)
	}
	for _, p := range parts {
		if err := os.Rename(filepath.Join(root, name, p), filepath.Join(staging, name, p)); err != nil {
			return fmt.Errorf("migrate tenant %s: %w", name, err)
		}
	}
	_ = os.Remove(filepath.Join(root, name)) // gone if it held nothing else
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
