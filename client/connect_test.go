package client_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentbill/agentbill/client"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

func TestCredentialsValidate(t *testing.T) {
	for _, c := range []struct {
		creds client.Credentials
		want  string // "" for valid
	}{
		{client.Credentials{}, ""},
		{client.Credentials{User: "agent", Password: "pw", InboxPrefix: "_INBOX_agent"}, ""},
		{client.Credentials{NKeyFile: "seed.nk"}, ""},
		{client.Credentials{Password: "pw"}, "needs a user"},
		{client.Credentials{User: "a", CredsFile: "x.creds"}, "one of"},
		{client.Credentials{CredsFile: "x.creds", NKeyFile: "seed.nk"}, "one of"},
		{client.Credentials{InboxPrefix: "_INBOX.>"}, "inbox prefix"},
		{client.Credentials{InboxPrefix: "_INBOX_a b"}, "inbox prefix"},
	} {
		err := c.creds.Validate()
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("Validate(%+v) = %v, want %q", c.creds, err, c.want)
		}
	}
	if _, err := (client.Credentials{CredsFile: filepath.Join(t.TempDir(), "missing.creds")}).Options(); err == nil {
		t.Error("a missing creds file was accepted")
	}
}

// TestCredentialsConnect authenticates with a user/password and with an
// nkey seed file against a real server that requires them, on the
// configured inbox prefix.
func TestCredentialsConnect(t *testing.T) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	seedFile := filepath.Join(t.TempDir(), "user.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	perms := &server.Permissions{Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX_x.>", "svc"}},
		Publish: &server.SubjectPermission{Allow: []string{"svc"}}, Response: &server.ResponsePermission{MaxMsgs: 1}}
	srv := startAuthServer(t, &server.Options{
		Users: []*server.User{{Username: "u", Password: "pw_secret", Permissions: perms}},
		Nkeys: []*server.NkeyUser{{Nkey: pub, Permissions: perms}},
	})
	for name, creds := range map[string]client.Credentials{
		"password": {User: "u", Password: "pw_secret", InboxPrefix: "_INBOX_x"},
		"nkey":     {NKeyFile: seedFile, InboxPrefix: "_INBOX_x"},
	} {
		nc, err := creds.Connect(srv.ClientURL())
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		sub, err := nc.Subscribe("svc", func(m *nats.Msg) { _ = m.Respond([]byte("ok")) })
		if err != nil {
			t.Fatal(err)
		}
		if m, err := nc.Request("svc", nil, 2*time.Second); err != nil || string(m.Data) != "ok" {
			t.Errorf("%s: request on the custom inbox: %v", name, err)
		}
		_ = sub.Unsubscribe()
		nc.Close()
	}
	if nc, err := (client.Credentials{User: "u", Password: "wrong"}).Connect(srv.ClientURL()); err == nil {
		nc.Close()
		t.Error("a wrong password connected")
	}
}
