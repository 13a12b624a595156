package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"
)

// rssSampler reads a server's resident memory from /proc/<pid>/status at a fixed interval and keeps the peaks
// of its anonymous part (heap, stacks: what the process allocates) and its file-backed part (the executable's
// pages and mapped data files). VmHWM, which the runner reports as peak RSS, is their sum at its highest; the
// split says which of the two a change has to cut.
type rssSampler struct {
	pid  int
	quit chan struct{}
	done chan struct{}

	mu         sync.Mutex
	anon, file int64 // peaks since the start
}

func sampleRSS(pid int, every time.Duration) *rssSampler {
	s := &rssSampler{pid: pid, quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			s.sample()
			select {
			case <-s.quit:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *rssSampler) sample() {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.pid))
	if err != nil {
		return
	}
	anon, file := parseRSS(b)
	s.mu.Lock()
	s.anon, s.file = max(s.anon, anon), max(s.file, file)
	s.mu.Unlock()
}

// peaks returns the peaks so far, after one more sample.
func (s *rssSampler) peaks() (anon, file int64) {
	s.sample()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.anon, s.file
}

// stop ends the sampling and returns the peaks.
func (s *rssSampler) stop() (anon, file int64) {
	anon, file = s.peaks()
	close(s.quit)
	<-s.done
	return anon, file
}

// parseRSS reads RssAnon and RssFile (in kB) from the text of /proc/<pid>/status, in bytes; a field that is
// missing or unreadable counts 0.
func parseRSS(status []byte) (anon, file int64) {
	for len(status) > 0 {
		line := status
		if i := bytes.IndexByte(status, '\n'); i >= 0 {
			line, status = status[:i], status[i+1:]
		} else {
			status = nil
		}
		key, val, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		var dst *int64
		switch string(key) {
		case "RssAnon":
			dst = &anon
		case "RssFile":
			dst = &file
		default:
			continue
		}
		n, err := strconv.ParseInt(string(bytes.TrimSpace(bytes.TrimSuffix(bytes.TrimSpace(val), []byte("kB")))), 10, 64)
		if err == nil && n >= 0 {
			*dst = n << 10
		}
	}
	return anon, file
}
