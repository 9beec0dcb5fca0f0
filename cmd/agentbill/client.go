package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/agentbill/agentbill/client"
	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/internal/strictjson"
	"github.com/agentbill/agentbill/ledger"
	"github.com/agentbill/agentbill/prices"
	"github.com/nats-io/nats.go"
)

// DefaultNATSURL is where client subcommands connect unless told otherwise.
const DefaultNATSURL = "nats://127.0.0.1:4222"

// clientFlags are the flags every client subcommand takes.
type clientFlags struct {
	fs            *flag.FlagSet
	nats          *natsFlags
	jsonOut       bool
	customer      string
	agent         string
	units         string
	reservation   string
	task          string
	taskCeiling   string
	ceiling       string
	ttl           string
	key           string
	failed        bool
	note          string
	limit         string
	period        string
	upgradeURL    string
	thresholds    listFlag
	agentLimits   listFlag
	scope         listFlag // preflight, record: DIM=VALUE[,DIM=VALUE]
	minUnits      string   // preflight: accept a partial approval
	overdraft     string   // budget set
	rollover      string   // budget set
	scopeLimits   listFlag // budget set: DIM=VALUE:UNITS[:PERIOD]
	maxRuns       int      // budget set
	maxRunsAgent  int      // budget set
	ratePerSec    string   // budget set: "" for the server's default
	rateBurst     int      // budget set
	expires       string   // grant
	effective     string   // grant
	priority      string   // grant ("": the ledger's default)
	source        string   // grant
	customerOptIn bool     // watch: --customer is optional
	denied        bool     // watch: refusals too
	durable       string   // watch: resume as this durable subscription
	usage         string   // record: usage JSON; preflight: usage_estimate JSON
	priceList     string   // budget set
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func newClientFlags(cmd string, stderr io.Writer) *clientFlags {
	f := &clientFlags{fs: flag.NewFlagSet(cmd, flag.ContinueOnError)}
	fs := f.fs
	fs.SetOutput(stderr)
	f.nats = addNATSFlags(fs, true)
	fs.BoolVar(&f.jsonOut, "json", false, "print the raw JSON reply")
	fs.StringVar(&f.customer, "customer", "", "customer ID")
	switch cmd {
	case "preflight":
		fs.StringVar(&f.agent, "agent", "", "agent ID")
		fs.StringVar(&f.units, "units", "", "estimated units")
		fs.StringVar(&f.task, "task", "", "task reference")
		fs.StringVar(&f.taskCeiling, "task-ceiling", "", "ceiling for the whole task")
		fs.StringVar(&f.ceiling, "ceiling", "", "ceiling for this call")
		fs.StringVar(&f.ttl, "ttl", "", "reservation lifetime (Go duration, default 15m)")
		fs.StringVar(&f.key, "idempotency-key", "", "idempotency key (generated if empty)")
		fs.Var(&f.scope, "scope", "the run's scope, DIM=VALUE[,DIM=VALUE...] (repeatable), e.g. team=research,user=alice")
		fs.StringVar(&f.minUnits, "min-units", "", "accept a partial approval of at least this many units")
		fs.StringVar(&f.usage, "usage-estimate", "", `price the estimate from the price list: JSON {"model":...,"input_tokens":N,"max_output_tokens":N}`)
	case "record":
		fs.StringVar(&f.agent, "agent", "", "agent ID")
		fs.StringVar(&f.units, "units", "", "units actually used")
		fs.StringVar(&f.reservation, "reservation", "", "reservation to settle (default: the agent's oldest)")
		fs.StringVar(&f.task, "task", "", "task reference")
		fs.BoolVar(&f.failed, "failed", false, "the run failed: release the reservation instead of charging")
		fs.StringVar(&f.key, "idempotency-key", "", "idempotency key (generated if empty)")
		fs.Var(&f.scope, "scope", "the run's scope when no reservation is settled, DIM=VALUE[,DIM=VALUE...] (repeatable)")
		fs.StringVar(&f.usage, "usage", "", `charge model usage at its price: JSON {"model":...,"input_tokens":N,"output_tokens":N,...}`)
	case "release":
		fs.StringVar(&f.reservation, "reservation", "", "reservation to release")
	case "extend":
		fs.StringVar(&f.reservation, "reservation", "", "reservation to extend")
		fs.StringVar(&f.ttl, "ttl", "", "new lifetime from now (Go duration)")
	case "topup":
		fs.StringVar(&f.units, "units", "", "units to add to this period")
		fs.StringVar(&f.note, "note", "", "note for the audit trail")
		fs.StringVar(&f.key, "idempotency-key", "", "idempotency key (generated if empty)")
	case "budget set":
		fs.StringVar(&f.limit, "limit", "", "units per period")
		fs.StringVar(&f.period, "period", "", "day, week, month or none")
		fs.StringVar(&f.upgradeURL, "upgrade-url", "", "where a refused customer can upgrade")
		fs.Var(&f.thresholds, "threshold", "alert fraction, e.g. 0.8 (repeatable)")
		fs.Var(&f.agentLimits, "agent-limit", "per-agent limit AGENT=UNITS (repeatable)")
		fs.StringVar(&f.overdraft, "overdraft", "", "units approvals may go below zero")
		fs.StringVar(&f.rollover, "rollover", "", "unused allowance carried into the next period: none, all or a cap in units")
		fs.Var(&f.scopeLimits, "scope-limit", "scope limit DIM=VALUE:UNITS[:day|week|month|none] (repeatable), e.g. team=research:100:day")
		fs.IntVar(&f.maxRuns, "max-runs", 0, "most open reservations of the customer (0: no cap)")
		fs.IntVar(&f.maxRunsAgent, "max-runs-per-agent", 0, "most open reservations of each agent (0: no cap)")
		fs.StringVar(&f.priceList, "price-list", "", "the price list of the customer's usage (default: the list named default)")
		fs.StringVar(&f.ratePerSec, "rate-limit-per-second", "", "the customer's own preflight rate limit, a second (0: no limit; default: the server's)")
		fs.IntVar(&f.rateBurst, "rate-limit-burst", 0, "preflights the customer may send at once, with --rate-limit-per-second")
	case "grant":
		fs.StringVar(&f.units, "units", "", "credits to grant")
		fs.StringVar(&f.expires, "expires", "", "when unused credits are forfeited, RFC 3339 (default: never)")
		fs.StringVar(&f.effective, "effective", "", "when the credits become usable, RFC 3339 (default: now)")
		fs.StringVar(&f.priority, "priority", "", "draw-down order among grants, lower first (default 100)")
		fs.StringVar(&f.source, "source", "", "label: purchase (default), promo, allowance...")
		fs.StringVar(&f.note, "note", "", "note for the audit trail")
		fs.StringVar(&f.key, "idempotency-key", "", "idempotency key (generated if empty)")
	case "watch":
		f.customerOptIn = true
		fs.BoolVar(&f.denied, "denied", false, "also print refusals (denied events)")
		fs.StringVar(&f.durable, "durable", "", "resume where the last watch with this NAME stopped (a durable consumer on the alert stream); without it, alerts from now on")
	}
	return f
}

func (f *clientFlags) parse(args []string) error {
	if err := f.fs.Parse(args); err != nil {
		return errUsage
	}
	if f.fs.NArg() > 0 {
		fmt.Fprintf(f.fs.Output(), "agentbill %s: unexpected argument %q\n", f.fs.Name(), f.fs.Arg(0))
		return errUsage
	}
	if f.customer == "" && !f.customerOptIn {
		fmt.Fprintf(f.fs.Output(), "agentbill %s: --customer is required\n", f.fs.Name())
		return errUsage
	}
	return nil
}

// amount parses an optional amount flag.
func amount(name, v string) (*events.Units, error) {
	if v == "" {
		return nil, nil
	}
	u, err := events.ParseUnits(v)
	if err != nil {
		return nil, ledger.Errorf(ledger.CodeInvalidArgument, "--%s: %v", name, err)
	}
	return &u, nil
}

func runClient(ctx context.Context, cmd string, args []string, stdout, stderr io.Writer) error {
	f := newClientFlags(cmd, stderr)
	if err := f.parse(args); err != nil {
		return err
	}
	s, err := f.nats.connect(ctx, nats.Name("agentbill-cli"))
	if err != nil {
		return err
	}
	defer s.close()
	return s.explain(clientOp(s.ctx, cmd, client.New(s.nc), f, &printer{w: stdout, json: f.jsonOut}))
}

// clientOp runs one client subcommand on c.
func clientOp(ctx context.Context, cmd string, c *client.Client, f *clientFlags, out *printer) error {
	switch cmd {
	case "preflight":
		return preflightCmd(ctx, c, f, out)
	case "record":
		return recordCmd(ctx, c, f, out)
	case "release":
		r, err := c.Release(ctx, f.customer, f.reservation)
		if err != nil {
			return err
		}
		return out.print(r, fmt.Sprintf("%s: %s units released; %s left", r.Status, r.ReleasedUnits, r.RemainingUnits))
	case "extend":
		d, err := time.ParseDuration(f.ttl)
		if err != nil {
			return ledger.Errorf(ledger.CodeInvalidArgument, "--ttl %q is not a Go duration", f.ttl)
		}
		r, err := c.Extend(ctx, f.customer, f.reservation, d)
		if err != nil {
			return err
		}
		return out.print(r, fmt.Sprintf("reservation %s now expires at %s", r.ReservationID, r.ExpiresAt.Format(time.RFC3339)))
	case "status":
		st, err := c.Status(ctx, f.customer)
		if err != nil {
			return err
		}
		return out.print(st, statusText(st))
	case "topup":
		units, err := amount("units", f.units)
		if err != nil {
			return err
		}
		st, err := c.TopUp(ctx, f.customer, ledger.TopUpRequest{Units: units, Note: f.note, IdempotencyKey: f.key})
		if err != nil {
			return err
		}
		return out.print(st, statusText(st))
	case "budget set":
		return budgetCmd(ctx, c, f, out)
	case "grant":
		return grantCmd(ctx, c, f, out)
	case "watch":
		return watchCmd(ctx, c, f, out)
	}
	return errUsage
}

func preflightCmd(ctx context.Context, c *client.Client, f *clientFlags, out *printer) error {
	req := ledger.PreflightRequest{AgentID: f.agent, TaskRef: f.task, TTL: f.ttl, IdempotencyKey: f.key}
	var err error
	if req.EstimatedUnits, err = amount("units", f.units); err != nil {
		return err
	}
	if req.TaskCeiling, err = amount("task-ceiling", f.taskCeiling); err != nil {
		return err
	}
	if req.Ceiling, err = amount("ceiling", f.ceiling); err != nil {
		return err
	}
	if req.MinUnits, err = amount("min-units", f.minUnits); err != nil {
		return err
	}
	if req.Scope, err = scopeFlag(f.scope); err != nil {
		return err
	}
	if f.usage != "" {
		req.UsageEstimate = new(prices.Estimate)
		if err := jsonFlag("usage-estimate", f.usage, req.UsageEstimate); err != nil {
			return err
		}
	}
	r, err := c.Preflight(ctx, f.customer, req)
	if err != nil {
		return err
	}
	if !r.Approved {
		text := fmt.Sprintf("refused (%s): %s", r.Reason, r.Message)
		if r.UpgradeURL != "" {
			text += "\nupgrade: " + r.UpgradeURL
		}
		if err := out.print(r, text); err != nil {
			return err
		}
		return errRefused
	}
	text := fmt.Sprintf("approved: reservation %s holds %s units until %s; %s left",
		r.ReservationID, r.ReservedUnits, r.ExpiresAt.Format(time.RFC3339), r.RemainingUnits)
	if r.Partial {
		text += " (partial: less than requested, all that fits)"
	}
	if r.Overdraft {
		text += " (in overdraft)"
	}
	return out.print(r, text)
}

func recordCmd(ctx context.Context, c *client.Client, f *clientFlags, out *printer) error {
	req := ledger.RecordRequest{AgentID: f.agent, ReservationID: f.reservation, TaskRef: f.task, IdempotencyKey: f.key}
	var err error
	if req.Units, err = amount("units", f.units); err != nil {
		return err
	}
	if f.failed {
		no := false
		req.Success = &no
	}
	if req.Scope, err = scopeFlag(f.scope); err != nil {
		return err
	}
	if f.usage != "" {
		req.Usage = new(events.Usage)
		if err := jsonFlag("usage", f.usage, req.Usage); err != nil {
			return err
		}
	}
	r, err := c.Record(ctx, f.customer, req)
	if err != nil {
		return err
	}
	text := fmt.Sprintf("%s: charged %s, released %s, overage %s; %s left",
		r.Status, r.ChargedUnits, r.ReleasedUnits, r.OverageUnits, r.RemainingUnits)
	switch {
	case r.Pricing != nil:
		text += "\npriced: " + r.Pricing.Describe()
	case r.Unpriced != "":
		text += "\nunpriced: " + r.Unpriced
	}
	if r.Exhausted {
		text += " (budget exhausted)"
	}
	for i, d := range r.FundedBy {
		sep := ", "
		if i == 0 {
			sep = "\nfunded by grants: "
		}
		text += fmt.Sprintf("%s%s (%s)", sep, d.GrantID, d.Units)
	}
	return out.print(r, text)
}

// scopeFlag reads --scope DIM=VALUE[,DIM=VALUE...], repeated or not, into
// a request's scope (nil for none); the ledger checks the names.
func scopeFlag(flags []string) (map[string]string, error) {
	var sc map[string]string
	for _, fl := range flags {
		for _, pair := range strings.Split(fl, ",") {
			dim, value, ok := strings.Cut(pair, "=")
			if !ok || dim == "" {
				return nil, ledger.Errorf(ledger.CodeInvalidArgument, "--scope %q: want DIM=VALUE[,DIM=VALUE...]", fl)
			}
			if sc == nil {
				sc = map[string]string{}
			}
			if _, dup := sc[dim]; dup {
				return nil, ledger.Errorf(ledger.CodeInvalidArgument, "--scope names %s twice", dim)
			}
			sc[dim] = value
		}
	}
	return sc, nil
}

func budgetCmd(ctx context.Context, c *client.Client, f *clientFlags, out *printer) error {
	req := ledger.BudgetRequest{Period: f.period, UpgradeURL: f.upgradeURL, PriceList: f.priceList}
	var err error
	if req.Limit, err = amount("limit", f.limit); err != nil {
		return err
	}
	for _, t := range f.thresholds {
		u, err := amount("threshold", t)
		if err != nil {
			return err
		}
		req.Thresholds = append(req.Thresholds, *u)
	}
	for _, al := range f.agentLimits {
		agent, units, ok := strings.Cut(al, "=")
		if !ok {
			return ledger.Errorf(ledger.CodeInvalidArgument, "--agent-limit %q: want AGENT=UNITS", al)
		}
		u, err := amount("agent-limit", units)
		if err != nil {
			return err
		}
		if req.AgentLimits == nil {
			req.AgentLimits = map[string]events.Units{}
		}
		req.AgentLimits[agent] = *u
	}
	if req.Overdraft, err = amount("overdraft", f.overdraft); err != nil {
		return err
	}
	for _, sl := range f.scopeLimits {
		l, err := scopeLimitFlag(sl)
		if err != nil {
			return err
		}
		req.ScopeLimits = append(req.ScopeLimits, l)
	}
	req.Rollover, req.MaxRuns, req.MaxRunsPerAgent = ledger.Rollover(f.rollover), f.maxRuns, f.maxRunsAgent
	if f.ratePerSec != "" {
		u, err := amount("rate-limit-per-second", f.ratePerSec)
		if err != nil {
			return err
		}
		req.RateLimit = &events.RateLimit{PerSecond: *u, Burst: f.rateBurst}
	} else if f.rateBurst != 0 {
		return ledger.Errorf(ledger.CodeInvalidArgument, "--rate-limit-burst needs --rate-limit-per-second")
	}
	st, err := c.SetBudget(ctx, f.customer, req)
	if err != nil {
		return err
	}
	return out.print(st, statusText(st))
}

// scopeLimitFlag reads --scope-limit DIM=VALUE:UNITS[:PERIOD]. It splits
// from the right, so a value may itself hold ':'; the ledger checks the
// names and the period.
func scopeLimitFlag(v string) (ledger.ScopeLimitRequest, error) {
	bad := ledger.Errorf(ledger.CodeInvalidArgument, "--scope-limit %q: want DIM=VALUE:UNITS[:day|week|month|none]", v)
	dim, rest, ok := strings.Cut(v, "=")
	if !ok {
		return ledger.ScopeLimitRequest{}, bad
	}
	var l ledger.ScopeLimitRequest
	if i := strings.LastIndexByte(rest, ':'); i >= 0 {
		if _, err := ledger.ParsePeriod(rest[i+1:]); err == nil && rest[i+1:] != "" {
			l.Period, rest = rest[i+1:], rest[:i]
		}
	}
	i := strings.LastIndexByte(rest, ':')
	if i < 0 {
		return ledger.ScopeLimitRequest{}, bad
	}
	u, err := amount("scope-limit", rest[i+1:])
	if err != nil {
		return ledger.ScopeLimitRequest{}, err
	}
	if u == nil {
		return ledger.ScopeLimitRequest{}, bad
	}
	l.Dimension, l.Value, l.Limit = dim, rest[:i], u
	return l, nil
}

func grantCmd(ctx context.Context, c *client.Client, f *clientFlags, out *printer) error {
	req := ledger.GrantRequest{Source: f.source, Note: f.note, IdempotencyKey: f.key}
	var err error
	if req.Units, err = amount("units", f.units); err != nil {
		return err
	}
	if req.ExpiresAt, err = timeFlag("expires", f.expires); err != nil {
		return err
	}
	if req.EffectiveAt, err = timeFlag("effective", f.effective); err != nil {
		return err
	}
	if f.priority != "" {
		p, err := strconv.Atoi(f.priority)
		if err != nil {
			return ledger.Errorf(ledger.CodeInvalidArgument, "--priority %q is not an integer", f.priority)
		}
		req.Priority = &p
	}
	r, err := c.Grant(ctx, f.customer, req)
	if err != nil {
		return err
	}
	until := "never expires"
	if r.ExpiresAt != nil {
		until = "expires " + r.ExpiresAt.Format(time.RFC3339)
	}
	return out.print(r, fmt.Sprintf("granted %s units: grant %s (source %s, priority %d, usable from %s, %s); %s left",
		r.Units, r.GrantID, r.Source, r.Priority, r.EffectiveAt.Format(time.RFC3339), until, r.RemainingUnits))
}

// timeFlag parses an optional RFC 3339 time flag.
func timeFlag(name, v string) (*time.Time, error) {
	if v == "" {
		return nil, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return nil, ledger.Errorf(ledger.CodeInvalidArgument, "--%s %q is not an RFC 3339 time (like 2026-04-01T00:00:00Z)", name, v)
	}
	return &t, nil
}

func statusText(st *ledger.StatusReply) string {
	var b strings.Builder
	fmt.Fprintf(&b, "customer   %s\n", st.CustomerID)
	fmt.Fprintf(&b, "period     %s (%s", st.Period, st.PeriodStart.Format(time.RFC3339))
	if st.PeriodEnd != nil {
		fmt.Fprintf(&b, " to %s", st.PeriodEnd.Format(time.RFC3339))
	}
	b.WriteString(")\n")
	fmt.Fprintf(&b, "limit      %s (top-ups %s)\n", st.Limit, st.TopUps)
	fmt.Fprintf(&b, "used       %s\n", st.Used)
	fmt.Fprintf(&b, "reserved   %s in %d open reservations\n", st.Reserved, st.OpenReservations)
	fmt.Fprintf(&b, "remaining  %s", st.Remaining)
	if st.Exhausted {
		b.WriteString(" (exhausted)")
	}
	policyText(&b, st)
	if st.PriceList != "" {
		fmt.Fprintf(&b, "\nprice list %s", st.PriceList)
	}
	if st.UnpricedRecords > 0 {
		fmt.Fprintf(&b, "\nunpriced   %d records whose usage could not be priced (charged their hold or units)", st.UnpricedRecords)
	}
	agents := make([]string, 0, len(st.Agents))
	for a := range st.Agents {
		agents = append(agents, a)
	}
	sort.Strings(agents)
	for _, a := range agents {
		as := st.Agents[a]
		fmt.Fprintf(&b, "\nagent      %s: used %s, reserved %s", a, as.Used, as.Reserved)
		if as.Limit != nil {
			fmt.Fprintf(&b, ", limit %s", *as.Limit)
		}
	}
	return b.String()
}

// policyText adds a status's grants, scopes and less common settings.
func policyText(b *strings.Builder, st *ledger.StatusReply) {
	if st.GrantsRemaining.Sign() > 0 || len(st.Grants) > 0 {
		fmt.Fprintf(b, "\ngrants     %s usable now (in remaining)", st.GrantsRemaining)
	}
	for _, g := range st.Grants {
		until := "never expires"
		if g.ExpiresAt != nil {
			until = "expires " + g.ExpiresAt.Format(time.RFC3339)
		}
		fmt.Fprintf(b, "\ngrant      %s: %s of %s left, %s, priority %d, from %s, %s",
			g.GrantID, g.Remaining, g.Units, g.Source, g.Priority, g.EffectiveAt.Format(time.RFC3339), until)
	}
	if st.Overdraft != nil {
		fmt.Fprintf(b, "\noverdraft  %s", *st.Overdraft)
	}
	if st.Rollover != "" {
		fmt.Fprintf(b, "\nrollover   %s", st.Rollover)
	}
	if st.MaxRuns > 0 || st.MaxRunsPerAgent > 0 {
		fmt.Fprintf(b, "\nmax runs   %s open, %s per agent", capText(st.MaxRuns), capText(st.MaxRunsPerAgent))
	}
	if rl := st.RateLimit; rl != nil && rl.Unlimited() {
		fmt.Fprintf(b, "\nrate limit none (the server's default lifted)")
	} else if rl != nil {
		fmt.Fprintf(b, "\nrate limit %s preflights a second, burst %d", rl.PerSecond, rl.Burst)
	}
	for _, sc := range st.Scopes {
		fmt.Fprintf(b, "\nscope      %s=%s: used %s, reserved %s, %s left of %s per %s",
			sc.Dimension, sc.Value, sc.Used, sc.Reserved, sc.Remaining, sc.Limit, sc.Period)
	}
}

// capText is a run cap for people: 0 is none.
func capText(n int) string {
	if n == 0 {
		return "no cap"
	}
	return strconv.Itoa(n)
}

func watchCmd(ctx context.Context, c *client.Client, f *clientFlags, out *printer) error {
	if f.customer != "" {
		if err := events.ValidateCustomerID(f.customer); err != nil {
			return ledger.Errorf(ledger.CodeInvalidArgument, "%v", err)
		}
	}
	var types []events.Type
	for _, t := range events.AlertTypes {
		if t != events.TypeDenied || f.denied {
			types = append(types, t)
		}
	}
	pal := plain
	if !out.json && colorTerminal(out.w, os.LookupEnv) {
		pal = ansi
	}
	if !out.json {
		names := make([]string, len(types))
		for i, t := range types {
			names[i] = string(t)
		}
		fmt.Fprintln(out.w, pal.dim("watching for "+strings.Join(names, ", ")+"; Ctrl-C to stop"))
	}
	if f.durable != "" {
		return c.Subscribe(ctx, f.durable, client.SubscribeOptions{CustomerID: f.customer, Types: types}, func(a client.Alert) error {
			return out.print(a.Event, alertText(a.Event, pal))
		})
	}
	return c.Watch(ctx, f.customer, types, func(_ uint64, e *events.Envelope) error {
		return out.print(e, alertText(e, pal))
	})
}

// alertText is one alert as a line for people: the time, the kind (in its
// colour), the customer, and what happened in numbers.
func alertText(e *events.Envelope, pal palette) string {
	b := events.BalanceOf(e.Data)
	at := pal.dim(e.At.UTC().Format(time.RFC3339))
	who := pal.bold(e.CustomerID)
	limit := b.Limit // with the period's top-ups already (events.Balance)
	switch d := e.Data.(type) {
	case *events.BudgetExhausted:
		s := fmt.Sprintf("%s  %s  %s: %s used, %s reserved of %s, %s left (%s)",
			at, pal.red(alertLabel(e.Type)), who, b.Used, b.Reserved, limit, b.Remaining, d.Trigger)
		if d.UpgradeURL != "" {
			s += "; upgrade: " + d.UpgradeURL
		}
		return s
	case *events.BudgetRestored:
		return fmt.Sprintf("%s  %s  %s: %s left of %s again (%s)",
			at, pal.green(alertLabel(e.Type)), who, b.Remaining, limit, d.Trigger)
	case *events.ThresholdCrossed:
		return fmt.Sprintf("%s  %s  %s: passed %s of %s; %s used, %s reserved, %s left",
			at, pal.yellow(alertLabel(e.Type)), who, d.Fraction, limit, b.Used, b.Reserved, b.Remaining)
	case *events.Denied:
		return fmt.Sprintf("%s  %s  %s: agent %s asked %s; %s: %s",
			at, pal.magenta(alertLabel(e.Type)), who, d.AgentID, d.Requested, d.Reason, d.Message)
	case *events.OverdraftStarted:
		s := fmt.Sprintf("%s  %s  %s: %s below zero, of an overdraft of %s",
			at, pal.yellow(alertLabel(e.Type)), who, b.Overdrawn, d.Overdraft)
		if d.AgentID != "" {
			s += " (agent " + d.AgentID + ")"
		}
		return s
	case *events.GrantExpired:
		return fmt.Sprintf("%s  %s  %s: grant %s of %s expired with %s unused; %s left",
			at, pal.yellow(alertLabel(e.Type)), who, d.GrantID, d.Units, d.Remaining, b.Remaining)
	}
	return fmt.Sprintf("%s  %s  %s", at, alertLabel(e.Type), who)
}

// alertLabelWidth aligns the kinds of alert in a column.
const alertLabelWidth = len(events.TypeThresholdCrossed)

func alertLabel(t events.Type) string { return fmt.Sprintf("%-*s", alertLabelWidth, t) }

// colorTerminal reports whether w is a terminal that should get colour:
// a character device, with NO_COLOR unset or empty (no-color.org) and
// TERM not "dumb".
func colorTerminal(w io.Writer, env func(string) (string, bool)) bool {
	if v, ok := env("NO_COLOR"); ok && v != "" {
		return false
	}
	if v, _ := env("TERM"); v == "dumb" {
		return false
	}
	return isTerminal(w)
}

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// palette colours parts of a line: ansi on a terminal, plain elsewhere.
type palette struct{ on bool }

var (
	plain = palette{}
	ansi  = palette{on: true}
)

func (p palette) wrap(code, s string) string {
	if !p.on {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

func (p palette) bold(s string) string    { return p.wrap("1", s) }
func (p palette) dim(s string) string     { return p.wrap("2", s) }
func (p palette) red(s string) string     { return p.wrap("1;31", s) }
func (p palette) green(s string) string   { return p.wrap("1;32", s) }
func (p palette) yellow(s string) string  { return p.wrap("1;33", s) }
func (p palette) magenta(s string) string { return p.wrap("1;35", s) }

// printer writes either the raw JSON reply or a line of text.
type printer struct {
	w    io.Writer
	json bool
}

func (p *printer) print(v any, text string) error {
	if p.json {
		return printJSON(p.w, v)
	}
	_, err := fmt.Fprintln(p.w, text)
	return err
}

// printJSON writes v as one line of JSON.
func printJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// jsonFlag decodes a flag's JSON object strictly into v.
func jsonFlag(name, text string, v any) error {
	if err := strictjson.Decode([]byte(text), v); err != nil {
		return ledger.Errorf(ledger.CodeInvalidArgument, "--%s: %s", name, strictjson.Problem(err))
	}
	return nil
}
