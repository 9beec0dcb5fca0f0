package embedded

import (
	"slices"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
)

// natsConfPath is the repo's nats.conf, from this package's directory.
const natsConfPath = "../nats.conf"

// natsConfUsers loads nats.conf's users (with throwaway passwords: it
// reads them from the environment) by name.
func natsConfUsers(t *testing.T) map[string]*server.Permissions {
	t.Helper()
	for _, env := range []string{"AGENTBILL_SERVICE_PASSWORD", "AGENTBILL_AGENT_PASSWORD",
		"AGENTBILL_SCOPED_AGENT_PASSWORD", "AGENTBILL_ADMIN_PASSWORD", "AGENTBILL_AUDITOR_PASSWORD"} {
		t.Setenv(env, "pw_test")
	}
	opts, err := server.ProcessConfigFile(natsConfPath)
	if err != nil {
		t.Fatal(err)
	}
	users := map[string]*server.Permissions{}
	for _, u := range opts.Users {
		users[u.Username] = u.Permissions
	}
	return users
}

// missing returns the subjects of want that got lacks.
func missing(want, got []string) []string {
	var out []string
	for _, s := range want {
		if !slices.Contains(got, s) {
			out = append(out, s)
		}
	}
	return out
}

// TestPermissionsFollowNATSConf: the default mode's users have nats.conf's
// rights: the anonymous user the agent's (with the default inbox), the
// service the service's (plus the events the dashboard subscribes to),
// the local admin the admin's and the auditor's (plus the key and webhook
// buckets and backups). Nothing in nats.conf is lost here, and the additions are the
// documented ones only.
func TestPermissionsFollowNATSConf(t *testing.T) {
	conf := natsConfUsers(t)
	for _, c := range []struct {
		name                string
		got                 *server.Permissions
		want                []*server.Permissions
		extraPub, extraSub  []string
		inboxWant, inboxGot string
	}{
		{"anonymous", anonymousPermissions(), []*server.Permissions{conf["agent"]},
			nil, []string{"agentbill.events.>"}, "_INBOX_agent.>", AnonymousInboxPrefix + ".>"},
		{"service", servicePermissions(), []*server.Permissions{conf["service"]},
			nil, nil, "", ""},
		{"admin", adminPermissions(), []*server.Permissions{conf["admin"], conf["auditor"]},
			union(keysBucket, webhooksBucket, backupRead), nil, "_INBOX_auditor.>", ""},
	} {
		var wantPub, wantSub []string
		for _, p := range c.want {
			wantPub = union(wantPub, p.Publish.Allow)
			wantSub = union(wantSub, p.Subscribe.Allow)
		}
		wantPub = union(wantPub, c.extraPub)
		wantSub = union(slices.DeleteFunc(wantSub, func(s string) bool { return s == c.inboxWant }), c.extraSub)
		if c.inboxGot != "" {
			wantSub = union(wantSub, []string{c.inboxGot})
		}
		gotPub, gotSub := c.got.Publish.Allow, c.got.Subscribe.Allow
		if m, x := missing(wantPub, gotPub), missing(gotPub, wantPub); m != nil || x != nil {
			t.Errorf("%s publish: lacks %q, has more %q", c.name, m, x)
		}
		if m, x := missing(wantSub, gotSub), missing(gotSub, wantSub); m != nil || x != nil {
			t.Errorf("%s subscribe: lacks %q, has more %q", c.name, m, x)
		}
		if c.got.Publish.Deny != nil || c.got.Subscribe.Deny != nil {
			t.Errorf("%s: deny lists, want allow lists only", c.name)
		}
	}
	if r := servicePermissions().Response; r == nil || conf["service"].Response == nil ||
		r.MaxMsgs != conf["service"].Response.MaxMsgs || r.Expires != conf["service"].Response.Expires {
		t.Errorf("service responses %+v, want nats.conf's %+v", r, conf["service"].Response)
	}
	for _, p := range []*server.Permissions{anonymousPermissions(), adminPermissions()} {
		if p.Response != nil {
			t.Errorf("a user other than the service may answer requests: %+v", p.Response)
		}
	}
}

// TestBoundsFollowNATSConf: a server started without a config file bounds
// connections and subscriptions as nats.conf does.
func TestBoundsFollowNATSConf(t *testing.T) {
	natsConfUsers(t) // sets the passwords nats.conf reads
	opts, err := server.ProcessConfigFile(natsConfPath)
	if err != nil {
		t.Fatal(err)
	}
	if opts.MaxConn != ConnectionsMax || opts.MaxSubs != SubscriptionsMax {
		t.Errorf("nats.conf: max_connections %d, max_subscriptions %d; embedded: %d and %d",
			opts.MaxConn, opts.MaxSubs, ConnectionsMax, SubscriptionsMax)
	}
	srv, err := Start(Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	got, err := srv.Varz(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.MaxConn != ConnectionsMax || got.MaxSubs != SubscriptionsMax {
		t.Errorf("embedded server runs with max_connections %d, max_subscriptions %d; want %d and %d",
			got.MaxConn, got.MaxSubs, ConnectionsMax, SubscriptionsMax)
	}
}
