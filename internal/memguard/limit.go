package memguard

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
)

// GoMemLimitPercentage is the share of the container's memory limit Sprout gives the Go runtime as its soft
// limit when GOMEMLIMIT is not set: the rest is for what the Go runtime does not count (thread stacks outside
// the heap, cgo, the page cache the kernel charges to the container) and for the collector's reaction time.
const GoMemLimitPercentage = 90

// unlimited is the value at or above which a cgroup v1 limit means "no limit" (the kernel reports
// 9223372036854771712, PAGE_COUNTER_MAX pages).
const unlimited = int64(1) << 62

// ContainerLimit is the memory limit of the cgroup the process runs in, read under root ("/" in production;
// a directory holding proc/self/cgroup and sys/fs/cgroup in tests). It returns 0 when there is no limit, and
// the file it read the limit from. Nested cgroups are walked up to the root and the smallest limit wins, as
// the kernel enforces every ancestor's limit.
func ContainerLimit(root string) (int64, string, error) {
	v2, v1 := ownCgroups(root)
	// cgroup v2: one hierarchy, memory.max holds a byte count or "max".
	var dirs []string
	for p := v2; ; p = filepath.Dir(p) {
		dirs = append(dirs, filepath.Join(root, "sys/fs/cgroup", p))
		if p == "/" || p == "." || p == "" {
			break
		}
	}
	limit, from, err := smallest(dirs, "memory.max")
	if err != nil || limit > 0 {
		return limit, from, err
	}
	// cgroup v1: the memory controller's own hierarchy.
	dirs = dirs[:0]
	for p := v1; ; p = filepath.Dir(p) {
		dirs = append(dirs, filepath.Join(root, "sys/fs/cgroup/memory", p))
		if p == "/" || p == "." || p == "" {
			break
		}
	}
	return smallest(dirs, "memory.limit_in_bytes")
}

// ownCgroups reads proc/self/cgroup: the process's cgroup v2 path ("0::/path") and its v1 memory cgroup path
// ("N:memory:/path", or memory among several controllers). A missing file means the root of both.
func ownCgroups(root string) (v2, v1 string) {
	v2, v1 = "/", "/"
	b, err := os.ReadFile(filepath.Join(root, "proc/self/cgroup"))
	if err != nil {
		return v2, v1
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		path := filepath.Clean("/" + parts[2])
		if parts[0] == "0" && parts[1] == "" {
			v2 = path
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == "memory" {
				v1 = path
			}
		}
	}
	return v2, v1
}

// smallest reads name in each dir that has it and returns the smallest limit (0: none).
func smallest(dirs []string, name string) (int64, string, error) {
	var best int64
	var from string
	for _, d := range dirs {
		p := filepath.Join(d, name)
		b, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, "", fmt.Errorf("read %s: %w", p, err)
		}
		s := strings.TrimSpace(string(b))
		if s == "max" || s == "" {
			continue
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, "", fmt.Errorf("read %s: %q is not a byte count: %w", p, s, err)
		}
		if n <= 0 || n >= unlimited {
			continue
		}
		if best == 0 || n < best {
			best, from = n, p
		}
	}
	return best, from, nil
}

// HostMemory is the host's memory (MemTotal in proc/meminfo under root), 0 if unknown.
func HostMemory(root string) int64 {
	b, err := os.ReadFile(filepath.Join(root, "proc/meminfo"))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && f[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err == nil && kb > 0 && kb < math.MaxInt64/1024 {
				return kb * 1024
			}
		}
	}
	return 0
}

// Decision is what SetGoMemLimit did, for the log.
type Decision struct {
	// GoMemLimit is the Go memory limit in force afterwards (math.MaxInt64: none).
	GoMemLimit int64
	// Set is true when Sprout set it (GOMEMLIMIT was not set and a container limit was found).
	Set bool
	// Container is the container's limit (0: none found) and From the file it was read from.
	Container int64
	From      string
	// Err is a failure to read the cgroup files (the limit is then left alone).
	Err error
}

func (d Decision) String() string {
	switch {
	case d.Err != nil:
		return fmt.Sprintf("GOMEMLIMIT left unset: %v", d.Err)
	case d.Set:
		return fmt.Sprintf("GOMEMLIMIT set to %s (%d %% of the container's memory limit %s, from %s)",
			mib(d.GoMemLimit), GoMemLimitPercentage, mib(d.Container), d.From)
	case d.GoMemLimit != math.MaxInt64:
		return fmt.Sprintf("GOMEMLIMIT %s, as set in the environment", mib(d.GoMemLimit))
	default:
		return "GOMEMLIMIT left unset: no container memory limit found"
	}
}

var lastDecision atomic.Pointer[Decision]

// SetGoMemLimit sets the Go runtime's soft memory limit to GoMemLimitPercentage of the container's memory
// limit, unless GOMEMLIMIT is set in the environment (getenv) or there is no container limit. The root is
// "/" in production. The decision is kept for LastDecision.
func SetGoMemLimit(root string, getenv func(string) string) Decision {
	d := decide(root, getenv)
	if d.Set {
		debug.SetMemoryLimit(d.GoMemLimit)
	}
	lastDecision.Store(&d)
	return d
}

func decide(root string, getenv func(string) string) Decision {
	if v := getenv("GOMEMLIMIT"); v != "" {
		return Decision{GoMemLimit: debug.SetMemoryLimit(-1)}
	}
	limit, from, err := ContainerLimit(root)
	if err != nil {
		return Decision{GoMemLimit: debug.SetMemoryLimit(-1), Err: err}
	}
	if limit == 0 {
		return Decision{GoMemLimit: debug.SetMemoryLimit(-1)}
	}
	return Decision{GoMemLimit: limit / 100 * GoMemLimitPercentage, Set: true, Container: limit, From: from}
}

// LastDecision is what SetGoMemLimit decided at start, if it ran.
func LastDecision() (Decision, bool) {
	d := lastDecision.Load()
	if d == nil {
		return Decision{}, false
	}
	return *d, true
}

// ProcessLimit is the memory limit the governor's budgets derive from when none is configured: the Go
// memory limit if one is set (by GOMEMLIMIT or SetGoMemLimit), else GoMemLimitPercentage of the host's memory
// (read under root), else 0 (unknown: the heap checks are then off).
func ProcessLimit(root string) int64 {
	if l := debug.SetMemoryLimit(-1); l > 0 && l < math.MaxInt64 {
		return l
	}
	return HostMemory(root) / 100 * GoMemLimitPercentage
}
