package migrate

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

// checkpointVersion is the format of the checkpoint file; a file of another version is refused, not guessed at.
const checkpointVersion = 1

// RunKey is what makes two runs the same run: a checkpoint written by one run may only resume that run, as its
// unit and batch numbers mean nothing for another range, tenant, target or batch size.
type RunKey struct {
	Tenant       string   `json:"tenant"`
	TargetTenant string   `json:"targetTenant"`
	FromUnixNano int64    `json:"fromUnixNano"`
	ToUnixNano   int64    `json:"toUnixNano"`
	BatchItems   int      `json:"batchItems"`
	Targets      []string `json:"targets"` // signal=target, one for each selected signal, sorted
}

// SignalState is the progress of one signal. Units (trace blocks, log chunks, metric windows) are sent in a
// fixed order and cut into batches in a fixed way, so "unit U done" and "the first N batches of unit U
// acknowledged" are enough to resume without sending anything twice.
type SignalState struct {
	Done []string `json:"done"`
	// Current is the unit being sent when the checkpoint was written, and Batches the number of its batches the
	// target acknowledged.
	Current string `json:"current,omitempty"`
	Batches int    `json:"batches,omitempty"`
	// Items and Bytes total what the target acknowledged over every run.
	Items    int64 `json:"items"`
	Bytes    int64 `json:"bytes"`
	Requests int64 `json:"requests"`

	done map[string]bool
}

func (s *SignalState) isDone(unit string) bool { return s.done[unit] }

func (s *SignalState) markDone(unit string) {
	if s.done[unit] {
		return
	}
	s.done[unit] = true
	s.Done = append(s.Done, unit)
	s.Current, s.Batches = "", 0
}

// Checkpoint is the progress of a migration, saved to a file after every acknowledged batch (write to a
// temporary file, fsync, rename), so that a run killed at any point resumes after the last batch the target
// acknowledged.
type Checkpoint struct {
	Version int                     `json:"version"`
	Run     RunKey                  `json:"run"`
	Signals map[string]*SignalState `json:"signals"`

	path string
}

// loadCheckpoint reads the checkpoint at path, or starts a new one when the file does not exist. A checkpoint
// of another run is an error that says which part differs: resuming it would skip or repeat the wrong data.
// With keepRange, the range of an existing checkpoint replaces key's: a range given relative to now ("the last
// 30 days") is resolved once, by the run that wrote the checkpoint, and a resumed run continues that range.
func loadCheckpoint(path string, key RunKey, keepRange bool) (*Checkpoint, error) {
	sort.Strings(key.Targets)
	cp := &Checkpoint{Version: checkpointVersion, Run: key, Signals: map[string]*SignalState{}, path: path}
	if path == "" {
		return cp, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return cp, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read checkpoint: %w", err)
	}
	var old Checkpoint
	if err := json.Unmarshal(b, &old); err != nil {
		return nil, fmt.Errorf("checkpoint %s is not a migration checkpoint: %w", path, err)
	}
	if old.Version != checkpointVersion {
		return nil, fmt.Errorf("checkpoint %s has version %d; this sprout writes version %d", path, old.Version, checkpointVersion)
	}
	if keepRange {
		key.FromUnixNano, key.ToUnixNano = old.Run.FromUnixNano, old.Run.ToUnixNano
		cp.Run = key
	}
	if d := key.diff(old.Run); d != "" {
		return nil, fmt.Errorf("checkpoint %s belongs to another migration (%s differs); use another --checkpoint, or remove the file to start over", path, d)
	}
	for name, st := range old.Signals {
		if st == nil {
			continue
		}
		st.done = make(map[string]bool, len(st.Done))
		for _, u := range st.Done {
			st.done[u] = true
		}
		cp.Signals[name] = st
	}
	return cp, nil
}

func (k RunKey) diff(o RunKey) string {
	switch {
	case k.Tenant != o.Tenant:
		return "tenant"
	case k.TargetTenant != o.TargetTenant:
		return "target tenant"
	case k.FromUnixNano != o.FromUnixNano:
		return "--from"
	case k.ToUnixNano != o.ToUnixNano:
		return "--to"
	case k.BatchItems != o.BatchItems:
		return "--batch-size"
	case len(k.Targets) != len(o.Targets):
		return "signals or targets"
	}
	for i := range k.Targets {
		if k.Targets[i] != o.Targets[i] {
			return "signals or targets"
		}
	}
	return ""
}

// signal returns the state of a signal, creating it.
func (c *Checkpoint) signal(name string) *SignalState {
	st := c.Signals[name]
	if st == nil {
		st = &SignalState{Done: []string{}, done: map[string]bool{}}
		c.Signals[name] = st
	}
	return st
}

// save writes the checkpoint atomically.
func (c *Checkpoint) save() error {
	if c.path == "" {
		return nil
	}
	b, err := json.MarshalIndent(c, "", " ")
	if err != nil {
		return fmt.Errorf("encode checkpoint: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(c.path), filepath.Base(c.path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write checkpoint: %w", err)
	}
	if _, err = tmp.Write(b); err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), c.path)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("write checkpoint %s: %w", c.path, err)
	}
	return nil
}
