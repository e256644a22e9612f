//go:build linux

package process

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func appendEventLine(t *testing.T, path string, e Event, partial bool) {
	t.Helper()
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	if !partial {
		b = append(b, '\n')
	} else {
		b = b[:len(b)/2]
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}

// EventsTail returns each complete line once, waits for a half-written
// one, and reads on across a rotation; ReadEvents reads both files by
// time.
func TestEventsTail(t *testing.T) {
	dir := t.TempDir()
	cur := filepath.Join(dir, eventsFile)
	t0 := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	ev := func(i int, typ string) Event {
		return Event{Time: t0.Add(time.Duration(i) * time.Second), Container: "web", Type: typ, PID: i}
	}
	appendEventLine(t, cur, ev(1, EventStart), false)
	tail := NewEventsTail(dir) // after the first
	if evs, err := tail.Next(); err != nil || len(evs) != 0 {
		t.Fatalf("Next before anything new: %v %v", evs, err)
	}
	appendEventLine(t, cur, ev(2, EventExit), false)
	appendEventLine(t, cur, ev(3, EventRestart), true) // half written
	evs, err := tail.Next()
	if err != nil || len(evs) != 1 || evs[0].PID != 2 {
		t.Fatalf("Next: %+v %v, want the exit only", evs, err)
	}
	// The writer finishes the line... the test rewrites the file as a
	// supervisor would have: the whole line, then rotates.
	b, _ := os.ReadFile(cur)
	full, _ := json.Marshal(ev(3, EventRestart))
	os.WriteFile(cur, append(b[:len(b)-len(full)/2], append(full, '\n')...), 0o600)
	appendEventLine(t, cur, ev(4, EventStart), false)
	if err := os.Rename(cur, cur+".1"); err != nil {
		t.Fatal(err)
	}
	appendEventLine(t, cur, ev(5, EventHealth), false)
	evs, err = tail.Next()
	if err != nil || len(evs) != 3 || evs[0].PID != 3 || evs[1].PID != 4 || evs[2].PID != 5 {
		t.Fatalf("Next across the rotation: %+v %v, want 3, 4, 5", evs, err)
	}
	all, err := ReadEvents(dir, t0.Add(2*time.Second))
	if err != nil || len(all) != 4 || all[0].PID != 2 || all[3].PID != 5 {
		t.Fatalf("ReadEvents since the second: %+v %v", all, err)
	}
	fromStart := NewEventsTailFromStart(dir)
	if evs, _ := fromStart.Next(); len(evs) != 1 || evs[0].PID != 5 {
		t.Errorf("a tail from the start of the current file: %+v", evs)
	}
}
