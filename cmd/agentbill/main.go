// Command agentbill is the AgentBill binary: `serve` runs the ledger, the
// other subcommands talk to it over NATS. Wiring only: the logic lives in
// the packages it imports.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/agentbill/agentbill/ledger"
)

// Exit codes.
const (
	ExitOK      = 0 // success; a preflight was approved
	ExitError   = 1 // an error: bad input, not found, unavailable, ...
	ExitUsage   = 2 // the command line is wrong
	ExitRefused = 3 // a preflight was refused
)

// errRefused marks a refusal: the command worked, the answer was no.
var errRefused = errors.New("refused")

// errUsage marks a command-line mistake (already reported).
var errUsage = errors.New("usage")

const usage = `agentbill: preflight budgets for AI agents

Usage:
  agentbill serve     [--data DIR] [--nats-listen HOST:PORT] [--nats-url URL]
                      [--nats-config FILE] [--default-budget UNITS/PERIOD | none]
                      [--http HOST:PORT] [--replicas 1|3] [--partitions N --partition I]
                      [--instance NAME] [--lease-ttl 3s] [--log-format text|json]
                      [--snapshot-every 1000000] [--snapshot-interval 10m]
                      [--signing-key FILE] [--trusted-keys FILE]
                      [--accept-reset REASON] [--adopt-unsigned REASON]
                      [--webhook-backoff-min 1s] [--webhook-backoff-max 1h]
                      [--webhook-retry-max-age 24h]
  agentbill preflight --customer C --agent A (--units N | --usage-estimate JSON) [--task T]
                      [--task-ceiling N] [--ceiling N] [--ttl D] [--scope DIM=V[,DIM=V]]
                      [--min-units N] [--idempotency-key K] [--json]
  agentbill record    --customer C --agent A (--units N | --usage JSON) [--reservation ID]
                      [--failed] [--scope DIM=V[,DIM=V]] [--json]
  agentbill release   --customer C --reservation ID [--json]
  agentbill extend    --customer C --reservation ID --ttl D [--json]
  agentbill status    --customer C [--json]
  agentbill budget set --customer C --limit N --period day|week|month|none
                      [--threshold 0.8 ...] [--upgrade-url URL] [--agent-limit A=N ...]
                      [--overdraft N] [--rollover none|all|N] [--scope-limit DIM=V:N[:PERIOD] ...]
                      [--max-runs N] [--max-runs-per-agent N] [--price-list NAME] [--json]
  agentbill prices set --file FILE [--list NAME] [--json]   # e.g. prices/starter.json
  agentbill prices show [--list NAME] [--json]
  agentbill topup     --customer C --units N [--note TEXT] [--json]   # this period only
  agentbill grant     --customer C --units N [--expires T] [--effective T] [--priority N]
                      [--source S] [--note TEXT] [--idempotency-key K] [--json]
                      # credits kept across periods until used or expired
  agentbill watch     [--customer C] [--denied] [--durable NAME] [--json]
  agentbill keys create --role agent|admin|auditor [--customer C] [--name N] [--replicas 1|3] [--json]
  agentbill keys list [--json]
  agentbill keys revoke ID [--json]
  agentbill webhooks add --url URL [--types T,...] [--customer C] [--allow-private] [--json]
  agentbill webhooks list [--json]
  agentbill webhooks remove|resume|test ID [--json]
  agentbill audit     --customer C [--from T] [--to T] [--format table|json|csv]
  agentbill audit verify [--public-keys FILE | --no-signatures] [--json]
  agentbill replay    [--until-seq N | --until-time T] [--customer C] [--verify] [--json]
  agentbill signing-key show|rotate [--data DIR] [--signing-key FILE] [--trusted-keys FILE]
  agentbill alerts rebuild [--data DIR | --nats-url URL] [--alerts-max-age D] [--replicas 1|3]
                      [--partitions N] [--public-keys FILE | --no-signatures]   # while no serve writes
  agentbill backup    --out DIR [--force] [--public-keys FILE | --data DIR] [--nats-url URL]
  agentbill restore   --from DIR (--data DIR | --nats-url URL) [--replicas 1|3]
  agentbill mcp       [--nats-url URL] [--admin-tools] [--on-unavailable deny|allow]   # MCP server over stdio
  agentbill bench     [--clients 64] [--customers 10000] [--duration 5s] [--rate CYCLES/S]
                      [--nats-url URL [--replicas 3]] [--webhooks] [--json] [--cpuprofile FILE]

Client subcommands connect to --nats-url (default $AGENTBILL_NATS_URL or
nats://127.0.0.1:4222). Every subcommand that talks to NATS (serve too)
takes credentials for a server with authorization (nats.conf, SECURITY.md):
  --nats-user U --nats-password P | --nats-creds FILE | --nats-nkey SEEDFILE
  --nats-inbox-prefix _INBOX_<user>
(env AGENTBILL_NATS_USER, _PASSWORD, _CREDS, _NKEY, _INBOX_PREFIX).
Without them, a client subcommand connects as the local admin if
--data DIR (default $AGENTBILL_DATA or ./data) holds the admin.nkey that
serve writes there, and otherwise anonymously: serve without --nats-config
lets anonymous clients send agent requests only.
Exit codes: 0 ok or approved, 3 refused, 1 error, 2 bad command line.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		if len(args) == 0 {
			return ExitUsage
		}
		return ExitOK
	}
	var err error
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		err = runServe(ctx, rest, stderr)
	case "preflight", "record", "release", "extend", "status", "topup", "grant", "watch":
		err = runClient(ctx, cmd, rest, stdout, stderr)
	case "audit":
		err = runAudit(ctx, rest, stdout, stderr)
	case "replay":
		err = runReplay(ctx, rest, stdout, stderr)
	case "backup":
		err = runBackup(ctx, rest, stdout, stderr)
	case "restore":
		err = runRestore(ctx, rest, stdout, stderr)
	case "mcp":
		err = runMCP(ctx, rest, stderr)
	case "bench":
		err = runBench(ctx, rest, stdout, stderr)
	case "keys":
		err = runKeys(ctx, rest, stdout, stderr)
	case "webhooks":
		err = runWebhooks(ctx, rest, stdout, stderr)
	case "signing-key":
		err = runSigningKey(ctx, rest, stdout, stderr)
	case "alerts":
		err = runAlerts(ctx, rest, stdout, stderr)
	case "prices":
		err = runPrices(ctx, rest, stdout, stderr)
	case "budget":
		if len(rest) == 0 || rest[0] != "set" {
			fmt.Fprintln(stderr, "agentbill budget: the only subcommand is `budget set`")
			return ExitUsage
		}
		err = runClient(ctx, "budget set", rest[1:], stdout, stderr)
	default:
		fmt.Fprintf(stderr, "agentbill: unknown command %q\n\n%s", cmd, usage)
		return ExitUsage
	}
	return exitCode(err, stderr)
}

func exitCode(err error, stderr io.Writer) int {
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, errRefused):
		return ExitRefused
	case errors.Is(err, errUsage), errors.Is(err, flag.ErrHelp):
		return ExitUsage
	}
	var le *ledger.Error
	if errors.As(err, &le) {
		fmt.Fprintf(stderr, "agentbill: %s: %s\n", le.Code, le.Message)
	} else {
		fmt.Fprintf(stderr, "agentbill: %v\n", err)
	}
	return ExitError
}
