package main

import (
	"io"
	"os"
	"strconv"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// terminalSafe wraps w for text a container controls (its logs, its
// processes' arguments, its mount points): when w is a terminal (the
// TCGETS ioctl answers), control characters are shown as escapes rather
// than sent, so the container cannot move the cursor, rewrite what was
// printed before, set the window title, or answer a terminal query on the
// user's behalf. Anything else (a pipe, a file, a buffer) gets the bytes
// unchanged, so `hutch logs NAME > file` stays exact.
func terminalSafe(w io.Writer) io.Writer {
	f, ok := w.(*os.File)
	if !ok {
		return w
	}
	if _, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS); err != nil {
		return w
	}
	return escapingWriter{w}
}

type escapingWriter struct{ w io.Writer }

func (e escapingWriter) Write(p []byte) (int, error) {
	if _, err := e.w.Write(escapeControls(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// escapeControls writes the C0 controls but \n and \t, DEL and the C1
// controls (U+0080-U+009F in UTF-8, and the bytes 0x80-0x9F that are not
// part of a UTF-8 sequence, which an 8-bit terminal reads as C1) as Go's
// strconv.Quote would: \r, \x1b, \x7f, \u009b, \x9b. Every other byte is
// kept, valid UTF-8 or not. Each call stands alone: a UTF-8 sequence cut
// between two calls can only show its second half as escapes, never let a
// control through.
func escapeControls(p []byte) []byte {
	var out []byte
	for i := 0; i < len(p); {
		r, n := utf8.DecodeRune(p[i:])
		var esc string
		switch {
		case r == '\n' || r == '\t':
		case r < 0x20 || r == 0x7f || r >= 0x80 && r <= 0x9f:
			q := strconv.QuoteRune(r)
			esc = q[1 : len(q)-1] // without the quotes
		case r == utf8.RuneError && n == 1 && p[i] >= 0x80 && p[i] <= 0x9f:
			esc = `\x` + strconv.FormatUint(uint64(p[i]), 16)
		}
		if esc == "" {
			if out != nil {
				out = append(out, p[i:i+n]...)
			}
		} else {
			if out == nil {
				out = append(make([]byte, 0, len(p)+16), p[:i]...)
			}
			out = append(out, esc...)
		}
		i += n
	}
	if out == nil {
		return p
	}
	return out
}
