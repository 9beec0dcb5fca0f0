package ledger

import (
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
	base := unsafe.Pointer(unsafe.SliceData(s))
	at := uintptr(base)
	start := (at + hugePageBytes - 1) &^ (hugePageBytes - 1)
	end := (at + uintptr(len(s))*unsafe.Sizeof(s[0])) &^ (hugePageBytes - 1)
	if end <= start {
		return
	}
	b := unsafe.Slice((*byte)(unsafe.Add(base, start-at)), end-start)
	_ = syscall.Madvise(b, syscall.MADV_HUGEPAGE)
}
