//go:build linux

package process

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// eventLog is the Go supervisor's writer of the bundle's events file
// (events.go has the format; supervisor_events.c is the C supervisor's
// writer). Each event is one line written with one write(2) on a
// descriptor opened with O_APPEND, so a line is never interleaved with
// another writer's and a reader sees whole lines or a last one still
// being written. The file is appended to, never truncated: the events of
// the supervisors before this one stay. At eventsMax bytes it is renamed
// to eventsFile+".1" (replacing the one before) and a new one is begun.
type eventLog struct {
	path      string
	container string
	f         *os.File
}

func openEvents(bundle, container string) *eventLog {
	l := &eventLog{path: filepath.Join(bundle, eventsFile), container: container}
	l.open()
	return l
}

func (l *eventLog) open() {
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND|unix.O_CLOEXEC, 0o600)
	if err != nil {
		fmt.Fprintf(os.Stderr, "supervisor: events: %v\n", err)
		return
	}
	l.f = f
}

// add appends e, stamped with the container and the time (now, unless
// set). Errors go to supervisor.log; a full disk must not stop the
// container, and the next event tries again.
func (l *eventLog) add(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e.Time = e.Time.UTC()
	e.Container = l.container
	b, err := json.Marshal(&e)
	if err != nil {
		return
	}
	b = append(b, '\n')
	if l.f == nil {
		l.open()
		if l.f == nil {
			return
		}
	}
	// The size is read each time: the file may have grown under a
	// supervisor before this one.
	if fi, err := l.f.Stat(); err == nil && fi.Size() > 0 && fi.Size()+int64(len(b)) > eventsMax {
		l.f.Close()
		l.f = nil
		if err := os.Rename(l.path, l.path+".1"); err != nil {
			fmt.Fprintf(os.Stderr, "supervisor: events: %v\n", err)
		}
		if l.open(); l.f == nil {
			return
		}
	}
	if _, err := l.f.Write(b); err != nil {
		fmt.Fprintf(os.Stderr, "supervisor: events: %v\n", err)
	}
}

func (l *eventLog) Close() {
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
}

// exitEvent is the exit event of a state just recorded: the exit code,
// and the signal's name when one ended the process.
func exitEvent(st *State) Event {
	code := st.ExitCode
	return Event{Time: st.Finished, Type: EventExit, ExitCode: &code, Signal: st.Signal}
}
