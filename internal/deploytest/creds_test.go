package deploytest

import (
	"crypto/rand"
	"encoding/hex"
	"os"

	"github.com/agentbill/agentbill/client"
)

// passwordEnv maps nats.conf's users to the environment variables their
// passwords come from (nats-server's $VAR substitution).
var passwordEnv = map[string]string{
	"service":        "AGENTBILL_SERVICE_PASSWORD",
	"agent":          "AGENTBILL_AGENT_PASSWORD",
	"agent-user_123": "AGENTBILL_SCOPED_AGENT_PASSWORD",
	"admin":          "AGENTBILL_ADMIN_PASSWORD",
	"auditor":        "AGENTBILL_AUDITOR_PASSWORD",
}

// setPasswords gives every user a fresh random password, generated the
// way SECURITY.md tells production to, unless the environment has one.
// Subprocess servers inherit them.
func setPasswords() {
	for _, env := range passwordEnv {
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

// roleCreds returns the credentials of one of nats.conf's users, with the
// inbox prefix it may subscribe to.
func roleCreds(user string) client.Credentials {
	env, ok := passwordEnv[user]
	if !ok {
		panic("no such user in nats.conf: " + user)
	}
	return client.Credentials{User: user, Password: os.Getenv(env), InboxPrefix: "_INBOX_" + user}
}
