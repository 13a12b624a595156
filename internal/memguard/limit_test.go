package memguard

import (
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

// fakeRoot writes files (path → content) under a temporary directory standing for "/".
func fakeRoot(t *testing.T, files map[string]string) string {
	root := t.TempDir()
	for p, content := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestContainerLimit(t *testing.T) {
	cases := []struct {
		name  string
		files map[string]string
		want  int64
		from  string
		err   string
	}{
		{"nothing mounted", nil, 0, "", ""},
		{"cgroup v2 namespaced", map[string]string{
			"proc/self/cgroup":         "0::/\n",
			"sys/fs/cgroup/memory.max": "1073741824\n",
		}, 1 << 30, "sys/fs/cgroup/memory.max", ""},
		{"cgroup v2 unlimited", map[string]string{
			"proc/self/cgroup":         "0::/\n",
			"sys/fs/cgroup/memory.max": "max\n",
		}, 0, "", ""},
		{"cgroup v2 nested: the smallest ancestor wins", map[string]string{
			"proc/self/cgroup":                           "0::/kubepods/pod1/ctr\n",
			"sys/fs/cgroup/kubepods/pod1/ctr/memory.max": "max\n",
			"sys/fs/cgroup/kubepods/pod1/memory.max":     "536870912\n",
			"sys/fs/cgroup/kubepods/memory.max":          "8589934592\n",
		}, 512 << 20, "sys/fs/cgroup/kubepods/pod1/memory.max", ""},
		{"cgroup v2 path not mounted (no cgroup namespace): the root file", map[string]string{
			"proc/self/cgroup":         "0::/system.slice/docker-abc.scope\n",
			"sys/fs/cgroup/memory.max": "268435456\n",
		}, 256 << 20, "sys/fs/cgroup/memory.max", ""},
		{"cgroup v1", map[string]string{
			"proc/self/cgroup": "12:cpu,cpuacct:/docker/abc\n11:memory:/docker/abc\n",
			"sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": "2147483648\n",
		}, 2 << 30, "sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes", ""},
		{"cgroup v1 unlimited", map[string]string{
			"proc/self/cgroup":                           "11:memory:/\n",
			"sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n",
		}, 0, "", ""},
		{"garbage", map[string]string{
			"sys/fs/cgroup/memory.max": "lots\n",
		}, 0, "", "not a byte count"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := fakeRoot(t, tc.files)
			got, from, err := ContainerLimit(root)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("limit = %d, want %d", got, tc.want)
			}
			if tc.from != "" && from != filepath.Join(root, tc.from) {
				t.Fatalf("from = %s, want %s", from, tc.from)
			}
		})
	}
}

func TestSetGoMemLimit(t *testing.T) {
	old := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
	root := fakeRoot(t, map[string]string{
		"proc/self/cgroup":         "0::/\n",
		"sys/fs/cgroup/memory.max": "1073741824\n",
		"proc/meminfo":             "MemTotal:       16318752 kB\nMemFree:  1 kB\n",
	})
	noEnv := func(string) string { return "" }

	debug.SetMemoryLimit(math.MaxInt64)
	d := SetGoMemLimit(root, noEnv)
	if !d.Set || d.GoMemLimit != (1<<30)/100*90 || debug.SetMemoryLimit(-1) != d.GoMemLimit {
		t.Fatalf("from a 1 GiB cgroup: %+v, runtime limit %d", d, debug.SetMemoryLimit(-1))
	}
	if !strings.Contains(d.String(), "GOMEMLIMIT set to 922 MiB") {
		t.Fatalf("log line %q", d.String())
	}
	if got, ok := LastDecision(); !ok || got != d {
		t.Fatalf("LastDecision = %+v, %v", got, ok)
	}
	if ProcessLimit(root) != d.GoMemLimit {
		t.Fatalf("ProcessLimit = %d, want the Go memory limit %d", ProcessLimit(root), d.GoMemLimit)
	}

	// The user's GOMEMLIMIT wins.
	debug.SetMemoryLimit(500 << 20)
	d = SetGoMemLimit(root, func(k string) string { return map[string]string{"GOMEMLIMIT": "500MiB"}[k] })
	if d.Set || d.GoMemLimit != 500<<20 || debug.SetMemoryLimit(-1) != 500<<20 {
		t.Fatalf("with GOMEMLIMIT set: %+v", d)
	}

	// No container limit: left alone; the governor falls back to the host's memory.
	debug.SetMemoryLimit(math.MaxInt64)
	bare := fakeRoot(t, map[string]string{"proc/meminfo": "MemTotal:       16318752 kB\n"})
	d = SetGoMemLimit(bare, noEnv)
	if d.Set || debug.SetMemoryLimit(-1) != math.MaxInt64 {
		t.Fatalf("without a container limit: %+v", d)
	}
	if want := int64(16318752*1024) / 100 * 90; ProcessLimit(bare) != want {
		t.Fatalf("ProcessLimit without limits = %d, want %d", ProcessLimit(bare), want)
	}
}

// FuzzContainerLimit: whatever proc/self/cgroup and memory.max hold, ContainerLimit returns a limit ≥ 0 or an
// error, and never reads outside the root (paths are cleaned under it).
func FuzzContainerLimit(f *testing.F) {
	f.Add("0::/\n", "1073741824\n")
	f.Add("0::/a/b\n11:memory:/docker/x\n", "max\n")
	f.Add("0::/../../etc\n", "9223372036854771712")
	f.Add(":::\n", "-5")
	f.Fuzz(func(t *testing.T, cgroup, max string) {
		root := t.TempDir()
		_ = os.MkdirAll(filepath.Join(root, "proc/self"), 0o755)
		_ = os.MkdirAll(filepath.Join(root, "sys/fs/cgroup"), 0o755)
		_ = os.WriteFile(filepath.Join(root, "proc/self/cgroup"), []byte(cgroup), 0o644)
		_ = os.WriteFile(filepath.Join(root, "sys/fs/cgroup/memory.max"), []byte(max), 0o644)
		limit, from, err := ContainerLimit(root)
		if err == nil && (limit < 0 || limit > 0 && !strings.HasPrefix(from, root)) {
			t.Fatalf("limit %d from %q", limit, from)
		}
	})
}
