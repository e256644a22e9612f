//go:build linux

package process

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Log lines are kept in the CRI logging format that Kubernetes' kubelet and
// containerd use, one line per record:
//
//	2026-11-29T04:05:06.123456789Z stdout F the line
//
// with the stream name and F for a full line or P for the part of a line
// longer than 16 KiB (the rest follows in the next records). The
// supervisor writes them (supervisor.c); this file reads them.

// LogOptions select what Logs prints.
type LogOptions struct {
	Follow     bool // keep printing new lines until the container's supervisor ends
	Tail       int  // only the last Tail lines; < 0 for all
	Timestamps bool // print each line's time first
}

// Logs prints the container's logs in bundle: stdout lines to stdout, stderr
// lines to stderr, oldest first, across rotated files. With Follow it then
// waits for new lines (following the file across rotations) until ctx ends
// or the supervisor is gone and everything was printed.
func (d *Driver) Logs(ctx context.Context, bundle string, o LogOptions, stdout, stderr io.Writer) error {
	path := filepath.Join(bundle, logDir, logName)
	name := filepath.Base(bundle)
	var files []string
	for i := 1; ; i++ {
		p := path + "." + strconv.Itoa(i)
		if _, err := os.Stat(p); err != nil {
			break
		}
		files = append([]string{p}, files...)
	}
	cur, err := os.Open(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("container %s: logs: %w", name, err)
	}
	if errors.Is(err, os.ErrNotExist) && len(files) == 0 {
		if _, serr := os.Stat(bundle); serr != nil {
			return fmt.Errorf("container %s: logs: %w", name, serr)
		}
	}
	out := func(line []byte) {
		ts, stream, tag, text, ok := parseRecord(line)
		if !ok {
			return
		}
		w := stdout
		if stream == "stderr" {
			w = stderr
		}
		if o.Timestamps && ts != "" {
			io.WriteString(w, ts+" ")
		}
		w.Write(text)
		if tag == "F" {
			w.Write([]byte{'\n'})
		}
	}
	// The rotated files are complete; read them and the current file's
	// lines so far, keeping the last Tail when asked.
	var tail [][]byte
	emit := func(line []byte) {
		if o.Tail < 0 {
			out(line)
			return
		}
		tail = append(tail, append([]byte(nil), line...))
		if len(tail) > o.Tail {
			tail = tail[1:]
		}
	}
	for _, f := range files {
		if err := eachLine(f, emit); err != nil {
			return fmt.Errorf("container %s: logs: %w", name, err)
		}
	}
	var rd *bufio.Reader
	if cur != nil {
		defer func() { cur.Close() }()
		rd = bufio.NewReader(cur)
		for {
			line, err := rd.ReadBytes('\n')
			if err != nil {
				// A half-written last record waits for its end.
				if len(line) > 0 {
					cur.Seek(-int64(len(line)), io.SeekCurrent)
					rd.Reset(cur)
				}
				break
			}
			emit(line)
		}
	}
	for _, l := range tail {
		out(l)
	}
	if !o.Follow {
		return nil
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	drain := func() {
		for cur != nil {
			line, err := rd.ReadBytes('\n')
			if err != nil {
				if len(line) > 0 {
					cur.Seek(-int64(len(line)), io.SeekCurrent)
					rd.Reset(cur)
				}
				return
			}
			out(line)
		}
	}
	for {
		drain()
		// Rotated: the path names a new file. The old one may have grown
		// after the read above and before the rename: read it to its end.
		if fi, err := os.Stat(path); err == nil {
			if cur == nil || !sameFile(cur, fi) {
				if cur != nil {
					drain()
					cur.Close()
				}
				if cur, err = os.Open(path); err != nil {
					return fmt.Errorf("container %s: logs: %w", name, err)
				}
				rd = bufio.NewReader(cur)
				continue
			}
		}
		st, err := readState(bundle)
		if err != nil || !st.SupervisorAlive() {
			// Print what the supervisor wrote just before it ended.
			drain()
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func sameFile(f *os.File, fi os.FileInfo) bool {
	cfi, err := f.Stat()
	if err != nil {
		return false
	}
	a, ok1 := cfi.Sys().(*syscall.Stat_t)
	b, ok2 := fi.Sys().(*syscall.Stat_t)
	return ok1 && ok2 && a.Ino == b.Ino && a.Dev == b.Dev
}

func eachLine(path string, fn func([]byte)) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil // rotated away meanwhile
	}
	if err != nil {
		return err
	}
	defer f.Close()
	rd := bufio.NewReader(f)
	for {
		line, err := rd.ReadBytes('\n')
		if len(line) > 0 && err == nil {
			fn(line)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// parseRecord splits one CRI log record.
func parseRecord(line []byte) (ts, stream, tag string, text []byte, ok bool) {
	line = bytes.TrimSuffix(line, []byte{'\n'})
	f := bytes.SplitN(line, []byte{' '}, 4)
	if len(f) < 3 {
		return "", "", "", nil, false
	}
	if len(f) == 4 {
		text = f[3]
	}
	return string(f[0]), string(f[1]), string(f[2]), text, true
}
