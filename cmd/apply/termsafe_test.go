package main

import (
	"bytes"
	"io"
	"os"
	"testing"

	processdrv "hutch/drivers/process"
	"hutch/internal/testutil"
)

func TestEscapeControls(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"plain", "GET / 200\n", "GET / 200\n"},
		{"newline and tab kept", "a\tb\nc\n", "a\tb\nc\n"},
		{"utf-8 kept", "größe ≤ 50M €\n", "größe ≤ 50M €\n"},
		{"colour", "\x1b[31mred\x1b[0m\n", `\x1b[31mred\x1b[0m` + "\n"},
		{"title", "\x1b]0;owned\x07", `\x1b]0;owned\a`},
		{"carriage return", "ok\rFAIL\n", `ok\rFAIL` + "\n"},
		{"backspace, nul, del", "a\bb\x00c\x7f", `a\bb\x00c\x7f`},
		{"C1 CSI as UTF-8", "x\u009b2Jy", `x\u009b2Jy`},
		{"C1 as a lone byte", "x\x9b2Jy", `x\x9b2Jy`},
		{"latin-1 text kept", "caf\xe9\n", "caf\xe9\n"},
		{"cut sequence", "\xc2", "\xc2"},
		{"no-break space kept", "a\u00a0b", "a\u00a0b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(escapeControls([]byte(tc.in))); got != tc.want {
				t.Errorf("escapeControls(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// A pty's slave is a terminal: what goes to it is escaped. A pipe and a
// buffer get the bytes as they are.
func TestTerminalSafeOnlyOnATerminal(t *testing.T) {
	text := "\x1b[2Jcleared\n"
	var buf bytes.Buffer
	terminalSafe(&buf).Write([]byte(text))
	if buf.String() != text {
		t.Errorf("a buffer got %q", buf.String())
	}

	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	terminalSafe(w).Write([]byte(text))
	w.Close()
	got, _ := io.ReadAll(r)
	r.Close()
	if string(got) != text {
		t.Errorf("a pipe got %q", got)
	}

	m, s, err := processdrv.OpenPty()
	if err != nil {
		t.Fatalf("open a pty: %v", err)
	}
	defer m.Close()
	defer s.Close()
	// Raw mode: the line discipline passes bytes as written (no \n -> \r\n).
	testutil.RawOutput(t, s)
	terminalSafe(s).Write([]byte(text))
	want := `\x1b[2Jcleared` + "\n"
	b := make([]byte, 100)
	k, err := m.Read(b)
	if err != nil {
		t.Fatal(err)
	}
	if string(b[:k]) != want {
		t.Errorf("the terminal got %q, want %q", b[:k], want)
	}
}
