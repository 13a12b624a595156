// Package loadgen holds the load generators of Sprout's measuring tools: OTLP traces, Loki pushes and
// Prometheus remote write, each sending batches encoded before the clock starts from a tight loop, so that the
// client spends far less CPU than the server it measures. tools/traceload, tools/logload and tools/metricload are
// thin command lines over it; tools/bench runs the same loads against Sprout and its peers one at a time.
//
// It must not be imported by Sprout's binary: it is a client of the public APIs, nothing more.
package loadgen

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// SelfCPU is the user+system CPU seconds this process has used.
func SelfCPU() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}

// ProcCPU is the user+system CPU seconds of a process from /proc/<pid>/stat (0 when pid is 0 or unreadable).
func ProcCPU(pid int) float64 {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	return parseStatCPU(b)
}

// parseStatCPU reads utime and stime (fields 14 and 15) of a /proc/<pid>/stat line.
func parseStatCPU(b []byte) float64 {
	// fields after the command name (which may hold spaces and parentheses) start after the last ')'
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

// ProcStatus is one field of /proc/<pid>/status as written there ("123456 kB"), or "?".
func ProcStatus(pid int, key string) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if v, ok := statusField(b, key); ok {
		return v
	}
	return "?"
}

// ProcStatusBytes is a kB field of /proc/<pid>/status (VmHWM, VmRSS, RssAnon) in bytes; 0 if unreadable.
func ProcStatusBytes(pid int, key string) int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	v, ok := statusField(b, key)
	if !ok {
		return 0
	}
	n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(v, "kB")), 10, 64)
	if err != nil {
		return 0
	}
	return n << 10
}

func statusField(b []byte, key string) (string, bool) {
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key+":"); ok {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}
