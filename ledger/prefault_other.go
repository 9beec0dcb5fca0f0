//go:build !linux

package ledger

// adviseHuge does nothing where the kernel has no transparent huge pages
// to ask for (prefault_linux.go).
func adviseHuge[T any](s []T) {}
