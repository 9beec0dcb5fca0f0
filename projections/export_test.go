package projections

// SetSnapshotPartBytes sets the part size of stored snapshots, for tests
// of snapshots in many parts; it returns a func that restores it.
func SetSnapshotPartBytes(n int) (restore func()) {
	old := snapshotPartBytes
	snapshotPartBytes = n
	return func() { snapshotPartBytes = old }
}
