package main_test

import (
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// `bench --soak D` runs the soak alone: too short a D is a usage error
// (exit 2); a soak that ends within its warm-up prints its samples and
// fails for want of a verdict (exit 1). The soak itself is tested in
// bench (TestSoak).
func TestBenchSoakFlag(t *testing.T) {
	out, err := exec.Command(binary, "bench", "--soak", "1s").CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(string(out), "soak 1s: want 5s..") {
		t.Errorf("bench --soak 1s: %v, %s; want exit 2 naming the bounds", err, out)
	}
	out, err = exec.Command(binary, "bench", "--soak", "5s", "--json").Output()
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Errorf("bench --soak 5s: %v; want exit 1 (not judged)", err)
	}
	var rep struct {
		Samples []struct {
			HeapBytes  uint64 `json:"heap_bytes"`
			Goroutines int    `json:"goroutines"`
		} `json:"samples"`
		Iterations map[string]uint64 `json:"iterations"`
		Verdict    struct {
			Note string `json:"note"`
		} `json:"verdict"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("bench --soak --json: %v\n%s", err, out)
	}
	if len(rep.Samples) == 0 || rep.Samples[0].HeapBytes == 0 || rep.Samples[0].Goroutines == 0 || rep.Iterations["cycle"] == 0 {
		t.Errorf("samples %+v, iterations %v: want heap, goroutines and cycles", rep.Samples, rep.Iterations)
	}
	if !strings.Contains(rep.Verdict.Note, "not judged") {
		t.Errorf("verdict note %q, want not judged", rep.Verdict.Note)
	}
}
