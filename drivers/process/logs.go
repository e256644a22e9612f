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
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Log lines are kept in the CRI logging format that Kubernetes' kubelet and
// containerd use, one line per record:
//
//	2026-11-29T04:05:06.123456789Z stdout F the line
//
// with the stream name and F for a full line or P for the part of a line
// longer than maxLine (the rest follows in the next records).
const maxLine = 16 << 10

// logFile is the supervisor's writer of bundle/logs/container.log, rotated at
// maxSize bytes: container.log becomes container.log.1, .1 becomes .2 and so
// on, keeping maxFiles files in all.
type logFile struct {
	mu       sync.Mutex
	buf      []byte // the record being written, reused
	path     string
	f        *os.File
	size     int64
	maxSize  int64
	maxFiles int
}

func openLog(path string, maxSize int64, maxFiles int) (*logFile, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("log %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("log %s: %w", path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("log %s: %w", path, err)
	}
	return &logFile{path: path, f: f, size: fi.Size(), maxSize: maxSize, maxFiles: maxFiles}, nil
}

func (l *logFile) setPolicy(maxSize int64, maxFiles int) {
	l.mu.Lock()
	l.maxSize, l.maxFiles = maxSize, maxFiles
	l.mu.Unlock()
}

// record writes one record; errors are dropped (a full disk must not stop
// the container), the next record tries again.
func (l *logFile) record(stream string, partial bool, line []byte) {
	tag := " F "
	if partial {
		tag = " P "
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := time.Now().UTC().AppendFormat(l.buf[:0], time.RFC3339Nano)
	b = append(b, ' ')
	b = append(b, stream...)
	b = append(b, tag...)
	b = append(b, line...)
	b = append(b, '\n')
	l.buf = b
	if l.maxSize > 0 && l.size > 0 && l.size+int64(len(b)) > l.maxSize {
		l.rotate()
	}
	if l.f == nil {
		return
	}
	n, _ := l.f.Write(b)
	l.size += int64(n)
}

func (l *logFile) rotate() {
	l.f.Close()
	l.f = nil
	keep := l.maxFiles - 1 // rotated files besides the current one
	if keep < 1 {
		os.Remove(l.path)
	} else {
		os.Remove(l.path + "." + strconv.Itoa(keep))
		for i := keep - 1; i >= 1; i-- {
			os.Rename(l.path+"."+strconv.Itoa(i), l.path+"."+strconv.Itoa(i+1))
		}
		os.Rename(l.path, l.path+".1")
	}
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return
	}
	l.f, l.size = f, 0
}

func (l *logFile) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// streamWriter splits what one of the container's streams writes into lines
// and records them.
type streamWriter struct {
	log    *logFile
	stream string
	buf    []byte
}

func (w *streamWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.buf = append(w.buf, p...)
			for len(w.buf) >= maxLine {
				w.log.record(w.stream, true, w.buf[:maxLine])
				w.buf = append(w.buf[:0], w.buf[maxLine:]...)
			}
			break
		}
		if len(w.buf) > 0 {
			w.buf = append(w.buf, p[:i]...)
			w.log.record(w.stream, false, w.buf)
			w.buf = w.buf[:0]
		} else {
			w.log.record(w.stream, false, p[:i])
		}
		p = p[i+1:]
	}
	return n, nil
}

// flush records a last line that had no newline.
func (w *streamWriter) flush() {
	if len(w.buf) > 0 {
		w.log.record(w.stream, false, w.buf)
		w.buf = w.buf[:0]
	}
}

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
