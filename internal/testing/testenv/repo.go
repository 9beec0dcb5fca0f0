package testenv

import (
	"path/filepath"
	"runtime"
)

// repoRoot is the repository's root: this file is
// internal/testing/testenv/repo.go below it. It is found from the source
// file, not from go test's working directory, so a test package finds the
// repository's files at any depth.
var repoRoot = func() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		panic("testenv: cannot locate the repository from the source file")
	}
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}()

// RepoPath returns the path of rel, a slash-separated path relative to the
// repository's root (like "nats.conf").
func RepoPath(rel string) string { return filepath.Join(repoRoot, filepath.FromSlash(rel)) }
