package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// Binaries the subprocess tests run, and the environment variables that
// name prebuilt ones (scripts/test.sh builds both once for every package).
const (
	AgentBillPkg     = "github.com/agentbill/agentbill/cmd/agentbill"
	AgentBillBinEnv  = "AGENTBILL_BIN"
	NATSServerPkg    = "github.com/nats-io/nats-server/v2" // the version go.mod requires
	NATSServerBinEnv = "AGENTBILL_NATS_SERVER_BIN"
	// BuildTimeout bounds one build: a cold cache compiles the server.
	BuildTimeout = 3 * time.Minute
)

var built struct {
	mu    sync.Mutex
	dir   string
	paths map[string]string
}

// Binary returns the executable of the main package pkg: $env if set,
// otherwise built once per test process into a temp dir that
// RemoveBinaries deletes.
func Binary(t testing.TB, env, pkg string) string {
	t.Helper()
	bin, err := BuildBinary(env, pkg)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// BuildBinary is Binary for callers without a testing.TB (TestMain).
func BuildBinary(env, pkg string) (string, error) {
	if p := os.Getenv(env); p != "" {
		return p, nil
	}
	built.mu.Lock()
	defer built.mu.Unlock()
	if p, ok := built.paths[pkg]; ok {
		return p, nil
	}
	if built.dir == "" {
		dir, err := os.MkdirTemp("", "agentbill-testbin-")
		if err != nil {
			return "", err
		}
		built.dir, built.paths = dir, map[string]string{}
	}
	bin := filepath.Join(built.dir, binaryName(pkg))
	ctx, cancel := context.WithTimeout(context.Background(), BuildTimeout)
	defer cancel()
	// go test puts its own GOROOT/bin first on PATH.
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
	}
	built.paths[pkg] = bin
	return bin, nil
}

// RemoveBinaries deletes what Binary built; call it from TestMain after
// m.Run.
func RemoveBinaries() {
	built.mu.Lock()
	defer built.mu.Unlock()
	if built.dir != "" {
		_ = os.RemoveAll(built.dir)
		built.dir, built.paths = "", nil
	}
}

// binaryName is what go build would name pkg's executable: its last path
// element, or the one before a major-version suffix (nats-server/v2).
func binaryName(pkg string) string {
	name := path.Base(pkg)
	if len(name) > 1 && name[0] == 'v' && strings.Trim(name[1:], "0123456789") == "" {
		name = path.Base(path.Dir(pkg))
	}
	if runtime.GOOS == "windows" {
		name += ".exe"
	}
	return name
}
