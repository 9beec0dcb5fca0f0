package client

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestSkippedWarningOncePerInterval: the warning comes back once
// SkippedWarnInterval has passed, and not before.
func TestSkippedWarningOncePerInterval(t *testing.T) {
	var logs bytes.Buffer
	now := time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)
	f := &failState{policy: Allow, logger: slog.New(slog.NewTextHandler(&logs, nil)), now: func() time.Time { return now }}
	steps := []struct {
		advance time.Duration
		want    int // warnings logged so far
	}{
		{0, 1},
		{SkippedWarnInterval - time.Second, 1},
		{time.Second, 2},
		{time.Second, 2},
	}
	for i, s := range steps {
		now = now.Add(s.advance)
		f.warn("u", int64(i+1), errors.New("unavailable"))
		if got := strings.Count(logs.String(), "budget check skipped"); got != s.want {
			t.Errorf("step %d: %d warnings, want %d", i, got, s.want)
		}
	}
}
