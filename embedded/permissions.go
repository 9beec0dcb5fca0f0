package embedded

import (
	"slices"

	"github.com/nats-io/nats-server/v2/server"
)

// Inbox prefixes of the default mode's users. Each user may subscribe
// only under its own, so no one reads another's replies; anonymous
// clients keep nats.go's default (_INBOX), which they cannot be expected
// to change.
const (
	AnonymousInboxPrefix = "_INBOX"
	ServiceInboxPrefix   = "_INBOX_service"
	AdminInboxPrefix     = "_INBOX_admin"
)

// The service answers each request once, within the server's default
// window for allow_responses (nats.conf's `allow_responses: true`).
const (
	serviceResponsesMax = server.DEFAULT_ALLOW_RESPONSE_MAX_MSGS
	serviceResponseTTL  = server.DEFAULT_ALLOW_RESPONSE_EXPIRATION
)

// Subjects of the default mode's permissions. Each list mirrors a user of
// the repo's nats.conf (SECURITY.md, "Default mode"); permissions_test.go
// compares them with it.
var (
	// agentRequests: preflight, record, release, extend, status.
	agentRequests = []string{"agentbill.v1.>", "agentbill.p.*.v1.>"}
	// adminRequests: budget set and top-up.
	adminRequests = []string{"agentbill.admin.v1.>", "agentbill.p.*.admin.v1.>"}
	// readLog is nats.conf's READ_LOG: an ordered consumer and message
	// gets on AGENTBILL, and nothing else of JetStream (no purge, no
	// delete, no update, no other stream).
	readLog = []string{
		"$JS.API.STREAM.INFO.AGENTBILL",
		"$JS.API.STREAM.MSG.GET.AGENTBILL",
		"$JS.API.DIRECT.GET.AGENTBILL",
		"$JS.API.DIRECT.GET.AGENTBILL.>",
		"$JS.API.CONSUMER.CREATE.AGENTBILL.>",
		"$JS.API.CONSUMER.INFO.AGENTBILL.*",
		"$JS.API.CONSUMER.MSG.NEXT.AGENTBILL.*",
		"$JS.API.CONSUMER.DELETE.AGENTBILL.*",
	}
	// readAlerts is nats.conf's READ_ALERTS: read the alert stream
	// AGENTBILL_EVENTS and keep consumers on it, durable ones included
	// (client.Subscribe, watch --durable, `nats consumer add`), with their
	// acks; nothing that changes the stream.
	readAlerts = []string{
		"$JS.API.STREAM.INFO.AGENTBILL_EVENTS",
		"$JS.API.STREAM.MSG.GET.AGENTBILL_EVENTS",
		"$JS.API.DIRECT.GET.AGENTBILL_EVENTS",
		"$JS.API.DIRECT.GET.AGENTBILL_EVENTS.>",
		"$JS.API.CONSUMER.CREATE.AGENTBILL_EVENTS.>",
		"$JS.API.CONSUMER.DURABLE.CREATE.AGENTBILL_EVENTS.*",
		"$JS.API.CONSUMER.INFO.AGENTBILL_EVENTS.*",
		"$JS.API.CONSUMER.NAMES.AGENTBILL_EVENTS",
		"$JS.API.CONSUMER.LIST.AGENTBILL_EVENTS",
		"$JS.API.CONSUMER.MSG.NEXT.AGENTBILL_EVENTS.*",
		"$JS.API.CONSUMER.DELETE.AGENTBILL_EVENTS.*",
		"$JS.ACK.AGENTBILL_EVENTS.>",
	}
	// keysBucket is what `agentbill keys create|list|revoke` needs on the
	// API-key bucket (keys.Open, Create, List, Revoke; embedded_test.go's
	// TestAdminRights fails on any violation): look the bucket up, create
	// it if `serve --http` has not yet (jetstream.CreateKeyValue reads the
	// account info first; create only: the server refuses to change an
	// existing bucket, and there is no update, purge or delete), get and
	// put records, and list keys with an ordered push consumer (its flow
	// control replies and cleanup).
	keysBucket = []string{
		"$JS.API.STREAM.INFO.KV_AGENTBILL_KEYS",
		"$JS.API.INFO",
		"$JS.API.STREAM.CREATE.KV_AGENTBILL_KEYS",
		"$JS.API.DIRECT.GET.KV_AGENTBILL_KEYS.>",
		"$JS.API.CONSUMER.CREATE.KV_AGENTBILL_KEYS.>",
		"$JS.API.CONSUMER.DELETE.KV_AGENTBILL_KEYS.*",
		"$JS.FC.KV_AGENTBILL_KEYS.>",
		"$KV.AGENTBILL_KEYS.>",
	}
	// webhooksBucket is what `agentbill webhooks add|list|remove|resume|test`
	// needs on the webhook bucket (webhooks.OpenRegistry, Add, List, Get,
	// Remove, Resume; TestAdminRights fails on any violation), as for the
	// key bucket: look it up, create it if serve has not yet, read records
	// directly, watch them with an ordered push consumer (List), and put
	// and delete them; and the endpoint's durable consumer on the webhook
	// stream AGENTBILL_WEBHOOK_EVENTS (stream info, consumer create at add,
	// info for list's pending count, delete at remove), a stream no other
	// user of the default mode may touch.
	webhooksBucket = []string{
		"$JS.API.STREAM.INFO.AGENTBILL_WEBHOOK_EVENTS",
		"$JS.API.CONSUMER.CREATE.AGENTBILL_WEBHOOK_EVENTS.>",
		"$JS.API.CONSUMER.INFO.AGENTBILL_WEBHOOK_EVENTS.*",
		"$JS.API.CONSUMER.DELETE.AGENTBILL_WEBHOOK_EVENTS.*",
		"$JS.API.STREAM.INFO.KV_AGENTBILL_WEBHOOKS",
		"$JS.API.INFO",
		"$JS.API.STREAM.CREATE.KV_AGENTBILL_WEBHOOKS",
		"$JS.API.DIRECT.GET.KV_AGENTBILL_WEBHOOKS.>",
		"$JS.API.CONSUMER.CREATE.KV_AGENTBILL_WEBHOOKS.>",
		"$JS.API.CONSUMER.DELETE.KV_AGENTBILL_WEBHOOKS.*",
		"$JS.FC.KV_AGENTBILL_WEBHOOKS.>",
		"$KV.AGENTBILL_WEBHOOKS.>",
	}
	// backupRead is what a read-only backup needs: stream snapshots of
	// the log, the snapshot object store and the key bucket, with their
	// flow-control acks, and the two buckets' info. A snapshot reads; it
	// cannot change a stream.
	backupRead = []string{
		"$JS.API.STREAM.SNAPSHOT.AGENTBILL",
		"$JS.API.STREAM.SNAPSHOT.OBJ_AGENTBILL_SNAPSHOTS",
		"$JS.API.STREAM.SNAPSHOT.KV_AGENTBILL_KEYS",
		"$JS.API.STREAM.INFO.OBJ_AGENTBILL_SNAPSHOTS",
		"$JS.API.STREAM.INFO.KV_AGENTBILL_KEYS",
		"$JS.SNAPSHOT.ACK.>",
	}
	// servicePublish is nats.conf's service user: the only one that may
	// append to the log and announce events.
	servicePublish = []string{
		"agentbill.log.>", "agentbill.events.>",
		"agentbill.v1.>", "agentbill.admin.v1.>", "agentbill.p.>",
		"$JS.API.>", "$JS.ACK.>", "$JS.FC.>", "$JS.SNAPSHOT.>",
		"$KV.AGENTBILL_KEYS.>", "$KV.AGENTBILL_LEASES.>", "$O.AGENTBILL_SNAPSHOTS.>",
		"$KV.AGENTBILL_WEBHOOKS.>",
	}
	// serviceSubscribe is nats.conf's service user, agentbill.events.>
	// included: the dashboard's live feed (dashboard/feed.go) runs in serve
	// on the service's connection and subscribes to the announced events.
	serviceSubscribe = []string{
		"agentbill.v1.*.*", "agentbill.admin.v1.*.*",
		"agentbill.admin.v1.prices", "agentbill.admin.v1.price_lists",
		"agentbill.p.*.v1.*.*", "agentbill.p.*.admin.v1.*.*",
		ServiceInboxPrefix + ".>",
		"agentbill.events.>",
	}
)

// anonymousPermissions: a client with no credential is an agent.
func anonymousPermissions() *server.Permissions {
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: union(agentRequests, readAlerts)},
		Subscribe: &server.SubjectPermission{Allow: []string{AnonymousInboxPrefix + ".>", "agentbill.events.>"}},
	}
}

// servicePermissions: serve's own connections.
func servicePermissions() *server.Permissions {
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: slices.Clone(servicePublish)},
		Subscribe: &server.SubjectPermission{Allow: slices.Clone(serviceSubscribe)},
		Response:  &server.ResponsePermission{MaxMsgs: serviceResponsesMax, Expires: serviceResponseTTL},
	}
}

// adminPermissions: the local admin (data/admin.nkey) is nats.conf's
// admin and auditor together, plus the key bucket (`agentbill keys`), the
// webhook bucket (`agentbill webhooks`) and read-only backups.
func adminPermissions() *server.Permissions {
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: union(agentRequests, adminRequests, readLog, readAlerts, keysBucket, webhooksBucket, backupRead)},
		Subscribe: &server.SubjectPermission{Allow: []string{AdminInboxPrefix + ".>", "agentbill.events.>"}},
	}
}

// union returns the subjects of every list, each once, in order.
func union(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		for _, s := range l {
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}
