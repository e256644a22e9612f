//go:build linux

package process

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// Events of a container, as its supervisor appends them to the bundle's
// events file, one JSON object per line, so that `hutch events` can show
// the past (--since) and follow what comes.
// (eventsFile and eventsMax are in protocol.go.)

// Event types.
const (
	EventStart   = "start"   // the process started (Event.PID)
	EventExit    = "exit"    // the process ended (ExitCode or Signal)
	EventOOM     = "oom"     // the kernel's OOM killer killed a process of the container
	EventRestart = "restart" // the supervisor starts the process again after the back-off
	EventHealth  = "health"  // the health state changed (Health; Message: the check's output)
	EventStop    = "stop"    // a stop was asked for (delete, replace)
)

// Event is one thing that happened to a container's process.
type Event struct {
	Time      time.Time `json:"time"`
	Container string    `json:"container"`
	Type      string    `json:"type"`
	PID       int       `json:"pid,omitempty"`
	ExitCode  *int      `json:"exitCode,omitempty"`
	Signal    string    `json:"signal,omitempty"`
	Health    string    `json:"health,omitempty"`
	Message   string    `json:"message,omitempty"`
}

// EventsPaths are the events files of a bundle, oldest first.
func EventsPaths(bundle string) []string {
	p := filepath.Join(bundle, eventsFile)
	return []string{p + ".1", p}
}

// ReadEvents returns the events of the bundle at or after since, oldest
// first. Missing files are no events; a line that does not decode (the
// supervisor was killed while writing it) is skipped.
func ReadEvents(bundle string, since time.Time) ([]Event, error) {
	var out []Event
	for _, p := range EventsPaths(bundle) {
		b, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("events: %w", err)
		}
		evs, _ := DecodeEvents(b)
		for _, e := range evs {
			if !e.Time.Before(since) {
				out = append(out, e)
			}
		}
	}
	return out, nil
}

// DecodeEvents decodes the complete lines of b and returns them with the
// number of bytes they took (a last line without its newline is left for
// a later read).
func DecodeEvents(b []byte) ([]Event, int) {
	var out []Event
	used := 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if used+len(line) >= len(b) || b[used+len(line)] != '\n' {
			break
		}
		used += len(line) + 1
		var e Event
		if json.Unmarshal(line, &e) == nil && e.Type != "" {
			out = append(out, e)
		}
	}
	return out, used
}

// EventsTail reads the events a bundle's supervisor appends, from where
// it was created on: each Next returns the complete lines written since
// the one before, across a rotation of the file.
type EventsTail struct {
	bundle string
	ino    uint64
	off    int64
}

// NewEventsTail starts reading the events of bundle after those already
// written (they are ReadEvents').
func NewEventsTail(bundle string) *EventsTail {
	t := &EventsTail{bundle: bundle}
	var st unix.Stat_t
	if unix.Stat(filepath.Join(bundle, eventsFile), &st) == nil {
		t.ino, t.off = st.Ino, st.Size
	}
	return t
}

// Next returns the events written since the last call.
func (t *EventsTail) Next() ([]Event, error) {
	cur := filepath.Join(t.bundle, eventsFile)
	var st unix.Stat_t
	if err := unix.Stat(cur, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, nil
		}
		return nil, fmt.Errorf("events: %w", err)
	}
	var out []Event
	if st.Ino != t.ino {
		// Rotated: the rest of the file read so far is now the .1 one.
		if t.ino != 0 {
			var old unix.Stat_t
			if unix.Stat(cur+".1", &old) == nil && old.Ino == t.ino {
				evs, _, err := readFrom(cur+".1", t.off)
				if err != nil {
					return nil, err
				}
				out = append(out, evs...)
			}
		}
		t.ino, t.off = st.Ino, 0
	}
	evs, n, err := readFrom(cur, t.off)
	if err != nil {
		return nil, err
	}
	t.off += int64(n)
	return append(out, evs...), nil
}

// readFrom decodes the complete event lines of the file at path after off,
// and returns them with the bytes they took.
func readFrom(path string, off int64) ([]Event, int, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("events: %w", err)
	}
	defer f.Close()
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return nil, 0, fmt.Errorf("events: %w", err)
	}
	b, err := io.ReadAll(io.LimitReader(f, 4*eventsMax))
	if err != nil {
		return nil, 0, fmt.Errorf("events: %w", err)
	}
	evs, n := DecodeEvents(b)
	return evs, n, nil
}

// NewEventsTailFromStart reads the events of bundle from its first one: a
// container made after the reader started.
func NewEventsTailFromStart(bundle string) *EventsTail { return &EventsTail{bundle: bundle} }
