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
	name := filepath.Base(bundle)
	l := &logReader{o: o, stdout: stdout, stderr: stderr, path: filepath.Join(bundle, logDir, logName)}
	defer l.close()
	if err := l.past(bundle); err != nil {
		return fmt.Errorf("container %s: logs: %w", name, err)
	}
	if !o.Follow {
		return nil
	}
	if err := l.follow(ctx, bundle); err != nil {
		return fmt.Errorf("container %s: logs: %w", name, err)
	}
	return nil
}

// logReader prints a container's log records, each stream to its writer.
type logReader struct {
	o              LogOptions
	stdout, stderr io.Writer
	path           string        // the current log file
	cur            *os.File      // it, open (nil: none yet)
	rd             *bufio.Reader // cur's reader
}

func (l *logReader) close() {
	if l.cur != nil {
		l.cur.Close()
	}
}

// out prints one record: its text to its stream's writer, after its time
// with Timestamps, and the newline a full line (F) had.
func (l *logReader) out(line []byte) {
	ts, stream, tag, text, ok := parseRecord(line)
	if !ok {
		return
	}
	w := l.stdout
	if stream == "stderr" {
		w = l.stderr
	}
	if l.o.Timestamps && ts != "" {
		io.WriteString(w, ts+" ")
	}
	w.Write(text)
	if tag == "F" {
		w.Write([]byte{'\n'})
	}
}

// readLines passes each whole record of the current file, from where the
// last read stopped, to f; a half-written last record waits for its end.
func (l *logReader) readLines(f func([]byte)) {
	for l.cur != nil {
		line, err := l.rd.ReadBytes('\n')
		if err != nil {
			if len(line) > 0 {
				l.cur.Seek(-int64(len(line)), io.SeekCurrent)
				l.rd.Reset(l.cur)
			}
			return
		}
		f(line)
	}
}

// past prints what the log holds now: the rotated files, which are
// complete, and the current file's records so far, or their last Tail.
func (l *logReader) past(bundle string) error {
	var files []string
	for i := 1; ; i++ {
		p := l.path + "." + strconv.Itoa(i)
		if _, err := os.Stat(p); err != nil {
			break
		}
		files = append([]string{p}, files...)
	}
	cur, err := os.Open(l.path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if errors.Is(err, os.ErrNotExist) && len(files) == 0 {
		if _, serr := os.Stat(bundle); serr != nil {
			return serr
		}
	}
	var tail [][]byte
	emit := func(line []byte) {
		if l.o.Tail < 0 {
			l.out(line)
			return
		}
		tail = append(tail, append([]byte(nil), line...))
		if len(tail) > l.o.Tail {
			tail = tail[1:]
		}
	}
	if cur != nil {
		l.cur, l.rd = cur, bufio.NewReader(cur)
	}
	for _, f := range files {
		if err := eachLine(f, emit); err != nil {
			return err
		}
	}
	l.readLines(emit)
	for _, t := range tail {
		l.out(t)
	}
	return nil
}

// follow prints the records that come, following the file across
// rotations, until ctx ends or the supervisor is gone and everything it
// wrote was printed.
func (l *logReader) follow(ctx context.Context, bundle string) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		l.readLines(l.out)
		// Rotated: the path names a new file. The old one may have grown
		// after the read above and before the rename: read it to its end.
		if fi, err := os.Stat(l.path); err == nil {
			if l.cur == nil || !sameFile(l.cur, fi) {
				if l.cur != nil {
					l.readLines(l.out)
					l.cur.Close()
				}
				cur, err := os.Open(l.path)
				if err != nil {
					l.cur = nil
					return err
				}
				l.cur, l.rd = cur, bufio.NewReader(cur)
				continue
			}
		}
		st, err := readState(bundle)
		if err != nil || !st.SupervisorAlive() {
			// Print what the supervisor wrote just before it ended.
			l.readLines(l.out)
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
