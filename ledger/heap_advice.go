package ledger

import (
	"cmp"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"unsafe"
)

// The Go runtime maps its heap without asking for huge pages, and where
// the kernel gives transparent huge pages only to memory that asks
// ("madvise", the usual default) every first touch of heap memory is a
// 4 KiB fault: BenchmarkReplayLarge's first replay of 10M events took
// 0.9 to 1.07 million of them and 6 to 8 s of system time. A restore's
// slabs ask for huge pages themselves (prefaulter); the rest of the heap a
// restore or replay builds (maps, decoded commits, the windows' entries)
// did not. AdviseHeap asks for huge pages in the memory the heap grows
// into next: it allocates heapAdviceChunkBytes chunks, which the runtime
// maps new and does not touch, advises them, drops them and collects.
// They are then free heap memory, which the runtime hands out lowest
// address first, and the advice stays with the mapping when the runtime
// reuses the pages or gives them back. A restore of a million customers
// in a new process then took 2,000 page faults, not 37,000, and 0.70 s,
// not 0.88 to 1.45 s (benchmarks/2026-12-07d). The advice holds for the
// process's life: the serving heap takes its new memory in huge pages
// too, each fault a larger one, and the kernel holds a huge page whole
// while any of it is in use.

// heapAdviceBytesMax bounds the heap memory AdviseHeap advises:
// BenchmarkReplayLarge's first replay peaked at 3.7 GiB of heap.
const heapAdviceBytesMax = 4 << 30

// heapAdviceMemoryShare is the share of the machine's memory (and of a
// memory limit, GOMEMLIMIT) AdviseHeap advises at most: the chunks are
// mapped, not touched, but a kernel that counts mappings against a
// commit limit (vm.overcommit_memory=2) counts them.
const heapAdviceMemoryShare = 4

// heapAdviceChunkBytes is the size of AdviseHeap's allocations; each is a
// span of its own, mapped new where the heap has no free span that big.
const heapAdviceChunkBytes = 64 << 20

var heapAdvised sync.Once

// AdviseHeap asks the kernel, once in the process, for huge pages in the
// heap memory next used: up to heapAdviceBytesMax, at most a
// heapAdviceMemoryShare-th of the machine's memory and of the memory
// limit. It does nothing unless the kernel's transparent huge pages are
// "madvise": with "always" the heap has them already, with "never" (or
// none) it cannot.
func AdviseHeap() {
	heapAdvised.Do(func() {
		if !hugePagesOnAdvice() {
			return
		}
		n := min(int64(heapAdviceBytesMax), machineMemory()/heapAdviceMemoryShare)
		if limit := debug.SetMemoryLimit(-1); limit > 0 {
			n = min(n, limit/heapAdviceMemoryShare)
		}
		adviseHeap(int(n))
	})
}

// adviseHeap advises about n bytes of heap memory, in whole chunks.
func adviseHeap(n int) {
	chunks := make([]unsafe.Pointer, 0, n/heapAdviceChunkBytes)
	for range n / heapAdviceChunkBytes {
		chunks = append(chunks, unsafe.Pointer(unsafe.SliceData(make([]byte, heapAdviceChunkBytes))))
	}
	// Chunks next to each other are advised as one span, so that the
	// huge pages across their boundaries are asked for too.
	slices.SortFunc(chunks, func(a, b unsafe.Pointer) int { return cmp.Compare(uintptr(a), uintptr(b)) })
	for i := 0; i < len(chunks); {
		j := i + 1
		for j < len(chunks) && uintptr(chunks[j]) == uintptr(chunks[j-1])+heapAdviceChunkBytes {
			j++
		}
		adviseSpan(chunks[i], uintptr(j-i)*heapAdviceChunkBytes)
		i = j
	}
	// Until a collection has swept them, the chunks are not free, and the
	// heap grows past them into memory not advised.
	chunks = nil
	runtime.GC()
}
