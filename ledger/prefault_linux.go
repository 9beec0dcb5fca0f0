package ledger

import (
	"os"
	"runtime"
	"strings"
	"syscall"
	"unsafe"
)

// hugePageBytes is the size of the x86-64 and arm64 kernels' huge pages
// (transparent huge pages), the unit adviseHuge rounds to.
const hugePageBytes = 2 << 20

// adviseHuge tells the kernel that s's memory, new to the process, is
// wanted in huge pages: the whole huge pages inside it, as the kernel
// maps huge pages only at their alignment. Where transparent huge pages
// are off (the sysfs setting "never") it changes nothing, and an error
// is no reason to stop: the memory works either way.
func adviseHuge[T any](s []T) {
	if len(s) == 0 {
		return
	}
	adviseSpan(unsafe.Pointer(unsafe.SliceData(s)), uintptr(len(s))*unsafe.Sizeof(s[0]))
}

// adviseSpan is adviseHuge for the n bytes of memory at base, which must
// be the process's own. The span may cover several allocations (the
// heap's chunks, adviseHeap): it goes to the kernel as an address and a
// length, not as a Go slice, which the race detector's pointer checks
// (checkptr) refuse to let straddle allocations.
func adviseSpan(base unsafe.Pointer, n uintptr) {
	at := uintptr(base)
	start := (at + hugePageBytes - 1) &^ (hugePageBytes - 1)
	end := (at + n) &^ (hugePageBytes - 1)
	if end <= start {
		return
	}
	_, _, _ = syscall.Syscall(syscall.SYS_MADVISE, start, end-start, syscall.MADV_HUGEPAGE)
	runtime.KeepAlive(base)
}

// machineMemory is the machine's memory in bytes (0 if unknown).
func machineMemory() int64 {
	var info syscall.Sysinfo_t
	if err := syscall.Sysinfo(&info); err != nil {
		return 0
	}
	return int64(info.Totalram) * int64(info.Unit)
}

// thpEnabledFile holds the kernel's transparent huge page setting, the
// one in use in brackets: "always [madvise] never".
const thpEnabledFile = "/sys/kernel/mm/transparent_hugepage/enabled"

// hugePagesOnAdvice says whether the kernel gives huge pages to the
// memory that asks for them (adviseHuge) and to no other.
func hugePagesOnAdvice() bool {
	b, err := os.ReadFile(thpEnabledFile)
	return err == nil && strings.Contains(string(b), "[madvise]")
}
