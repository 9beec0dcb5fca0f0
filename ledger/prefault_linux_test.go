package ledger

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"unsafe"
)

// adviseHuge marks the whole huge pages inside a slab as wanting huge
// pages (the "hg" flag of their mapping, which the kernel sets whatever
// huge pages it then has to give), and a slab too small to hold one is
// left alone.
func TestAdviseHuge(t *testing.T) {
	if _, err := os.Stat(thpEnabledFile); err != nil {
		t.Skip("this kernel has no transparent huge pages:", err)
	}
	s := make([]byte, 4*hugePageBytes)
	adviseHuge(s)
	at := uintptr(unsafe.Pointer(&s[0]))
	inside := (at + hugePageBytes - 1) &^ (hugePageBytes - 1)
	if flags := vmFlags(t, inside); !strings.Contains(" "+flags+" ", " hg ") {
		t.Fatalf("the slab's first whole huge page at %#x is mapped with flags %q, no hg", inside, flags)
	}
	small := make([]byte, hugePageBytes/2)
	adviseHuge(small) // must not round out to memory not its own
	touch(s)
	if s[0] != 0 || s[len(s)-1] != 0 {
		t.Fatal("advice changed the slab's bytes")
	}
}

// vmFlags returns the VmFlags of the mapping holding address at.
func vmFlags(t *testing.T, at uintptr) string {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skip("no /proc/self/smaps:", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	in := false
	for sc.Scan() {
		line := sc.Text()
		var lo, hi uintptr
		if n, _ := fmt.Sscanf(line, "%x-%x", &lo, &hi); n == 2 { // a mapping's first line
			in = lo <= at && at < hi
			continue
		}
		if in && strings.HasPrefix(line, "VmFlags:") {
			return strings.TrimSpace(strings.TrimPrefix(line, "VmFlags:"))
		}
	}
	t.Fatalf("no mapping holds %#x", at)
	return ""
}

// TestAdviseHeap runs in a new process of its own (the test binary again),
// where the heap is small and no other test allocates: the span it
// allocates after the advice then has nowhere to go but the advised
// chunks' memory, or memory mapped after them.
func TestAdviseHeap(t *testing.T) {
	if _, err := os.Stat(thpEnabledFile); err != nil {
		t.Skip("this kernel has no transparent huge pages:", err)
	}
	if os.Getenv(adviseHeapChildEnv) == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestAdviseHeap$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), adviseHeapChildEnv+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestAdviseHeap") {
			t.Fatalf("in a new process: %v\n%s", err, out)
		}
		return
	}
	adviseHeap(8 * heapAdviceChunkBytes)
	s := make([]byte, 4*heapAdviceChunkBytes)
	at := uintptr(unsafe.Pointer(&s[0]))
	inside := (at + hugePageBytes - 1) &^ (hugePageBytes - 1)
	if flags := vmFlags(t, inside); !strings.Contains(" "+flags+" ", " hg ") {
		t.Fatalf("heap memory at %#x, allocated after the advice, is mapped with flags %q, no hg", inside, flags)
	}
	runtime.KeepAlive(s)
}

// adviseHeapChildEnv marks TestAdviseHeap's own process.
const adviseHeapChildEnv = "AGENTBILL_TEST_ADVISE_HEAP_CHILD"
