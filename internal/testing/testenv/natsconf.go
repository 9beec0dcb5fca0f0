package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"regexp"
	"strconv"
	"testing"

	"github.com/agentbill/agentbill/client"
	"github.com/nats-io/nats-server/v2/server"
)

// NATSConfPath is the repo's nats.conf.
var NATSConfPath = RepoPath("nats.conf")

// NATSConfPasswordEnv maps nats.conf's users to the environment variables
// their passwords come from (nats-server's $VAR substitution).
var NATSConfPasswordEnv = map[string]string{
	"service":        "AGENTBILL_SERVICE_PASSWORD",
	"agent":          "AGENTBILL_AGENT_PASSWORD",
	"agent-user_123": "AGENTBILL_SCOPED_AGENT_PASSWORD",
	"admin":          "AGENTBILL_ADMIN_PASSWORD",
	"auditor":        "AGENTBILL_AUDITOR_PASSWORD",
}

// SetNATSConfPasswords gives every nats.conf user a fresh random password,
// generated the way SECURITY.md tells production to, unless the
// environment has one. Subprocesses inherit them. Call it from TestMain.
func SetNATSConfPasswords() {
	for _, env := range NATSConfPasswordEnv {
		if os.Getenv(env) != "" {
			continue
		}
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			panic(err)
		}
		if err := os.Setenv(env, "pw_"+hex.EncodeToString(b)); err != nil {
			panic(err)
		}
	}
}

// NATSConfCreds returns the credentials of one of nats.conf's users (the
// password SetNATSConfPasswords set), with the inbox prefix it may
// subscribe to.
func NATSConfCreds(user string) client.Credentials {
	env, ok := NATSConfPasswordEnv[user]
	if !ok {
		panic("no such user in nats.conf: " + user)
	}
	return client.Credentials{User: user, Password: os.Getenv(env), InboxPrefix: "_INBOX_" + user}
}

var (
	listenLine   = regexp.MustCompile(`(?m)^(\s*listen\s*:\s*)\S+[ \t]*$`)
	storeDirLine = regexp.MustCompile(`(?m)^(\s*store_dir\s*:\s*)\S+[ \t]*$`)
)

// WriteNATSConf writes a copy of the repo's nats.conf to dst with only the
// listen port (still loopback) and store_dir changed, checks the copy
// still parses to what the original says otherwise, and returns dst.
func WriteNATSConf(t testing.TB, dst string, port int, storeDir string) string {
	t.Helper()
	src, err := os.ReadFile(NATSConfPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, re := range []*regexp.Regexp{listenLine, storeDirLine} {
		if n := len(re.FindAll(src, -1)); n != 1 {
			t.Fatalf("nats.conf has %d lines matching %s, want 1: update WriteNATSConf", n, re)
		}
	}
	out := listenLine.ReplaceAll(src, []byte("${1}127.0.0.1:"+strconv.Itoa(port)))
	out = storeDirLine.ReplaceAll(out, []byte("${1}"+strconv.Quote(storeDir)))
	if err := os.WriteFile(dst, out, 0o600); err != nil {
		t.Fatal(err)
	}
	orig, err := server.ProcessConfigFile(NATSConfPath)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := server.ProcessConfigFile(dst)
	if err != nil {
		t.Fatalf("rewritten config: %v\n%s", err, out)
	}
	if cp.Host != "127.0.0.1" || cp.Port != port || cp.StoreDir != storeDir ||
		cp.SyncAlways != orig.SyncAlways || cp.MaxPayload != orig.MaxPayload || cp.ServerName != orig.ServerName {
		t.Fatalf("rewritten config parses to host %s port %d store %s sync_always %v; want 127.0.0.1, %d, %s and the rest as nats.conf",
			cp.Host, cp.Port, cp.StoreDir, cp.SyncAlways, port, storeDir)
	}
	return dst
}
