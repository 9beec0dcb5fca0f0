package projections

// SetSnapshotPartBytes sets the part size of stored snapshots, for tests
// of snapshots in many parts; it returns a func that restores it.
func SetSnapshotPartBytes(n int) (restore func()) {
	old := snapshotPartBytes
	snapshotPartBytes = n
	return func() { snapshotPartBytes = old }
}

// SetShadowQueueBytes sets the bound on the commit bytes waiting for the
// snapshot shadow; it returns a func that restores it.
func SetShadowQueueBytes(n int) (restore func()) {
	old := shadowQueueBytesMax
	shadowQueueBytesMax = n
	return func() { shadowQueueBytesMax = old }
}
