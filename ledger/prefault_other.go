//go:build !linux

package ledger

import "unsafe"

// adviseHuge does nothing where the kernel has no transparent huge pages
// to ask for (prefault_linux.go).
func adviseHuge[T any](s []T) {}

// adviseSpan does nothing (prefault_linux.go).
func adviseSpan(base unsafe.Pointer, n uintptr) {}

// machineMemory is not read here (0): AdviseHeap returns before it
// (hugePagesOnAdvice).
func machineMemory() int64 { return 0 }

// hugePagesOnAdvice is false here: AdviseHeap does nothing.
func hugePagesOnAdvice() bool { return false }
