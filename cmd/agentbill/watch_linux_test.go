//go:build linux

package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal and returns its terminal end.
func openPTY(t *testing.T) *os.File {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestColorTerminal writes to a real pseudo-terminal (Linux's /dev/ptmx):
// only a terminal gets colour, and NO_COLOR or TERM=dumb turn it off.
func TestColorTerminal(t *testing.T) {
	tty := openPTY(t)
	file, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	env := func(vars ...string) func(string) (string, bool) {
		return func(k string) (string, bool) {
			for i := 0; i < len(vars); i += 2 {
				if vars[i] == k {
					return vars[i+1], true
				}
			}
			return "", false
		}
	}
	for _, c := range []struct {
		name string
		out  any
		env  func(string) (string, bool)
		want bool
	}{
		{"terminal", tty, env("TERM", "xterm-256color"), true},
		{"terminal, NO_COLOR=1", tty, env("NO_COLOR", "1"), false},
		{"terminal, NO_COLOR empty", tty, env("NO_COLOR", ""), true},
		{"terminal, TERM=dumb", tty, env("TERM", "dumb"), false},
		{"file", file, env(), false},
		{"buffer", &bytes.Buffer{}, env(), false},
	} {
		w := c.out.(interface{ Write([]byte) (int, error) })
		if got := colorTerminal(w, c.env); got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
}
