package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/agentbill/agentbill/client"
	"github.com/agentbill/agentbill/ledger"
	"github.com/agentbill/agentbill/prices"
)

// runPrices is `agentbill prices set --file F [--list NAME]` and
// `agentbill prices show [--list NAME]` (admin).
func runPrices(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "set" && args[0] != "show") {
		fmt.Fprintln(stderr, "agentbill prices: want `prices set --file FILE [--list NAME]` or `prices show [--list NAME]`")
		return errUsage
	}
	sub := args[0]
	fs := flag.NewFlagSet("prices "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	nf := addNATSFlags(fs, true)
	jsonOut := fs.Bool("json", false, "print the raw JSON reply")
	list := fs.String("list", "", "the list's name (set: overrides the file's; show: show this list's prices)")
	var file *string
	if sub == "set" {
		file = fs.String("file", "", "the price list, JSON (docs/PROTOCOL.md, \"Price lists\"), e.g. prices/starter.json")
	}
	if err := fs.Parse(args[1:]); err != nil || fs.NArg() > 0 {
		return errUsage
	}
	var body []byte
	if sub == "set" {
		var err error
		if body, err = priceListFile(*file, *list); err != nil {
			return err
		}
	}
	s, err := nf.connect(ctx, nats.Name("agentbill-cli"))
	if err != nil {
		return err
	}
	defer s.close()
	out := &printer{w: stdout, json: *jsonOut}
	c := client.New(s.nc)
	if sub == "set" {
		r, err := c.SetPrices(s.ctx, body)
		if err != nil {
			return s.explain(err)
		}
		what := "unchanged (this version is already set)"
		if r.Changed {
			what = "set"
		}
		return out.print(r, fmt.Sprintf("price list %s version %s: %s, %d models, on %d writer(s); sha256 %s",
			r.PriceList, r.Version, what, r.Models, r.Partitions, r.Digest))
	}
	r, err := c.PriceLists(s.ctx, *list)
	if err != nil {
		return s.explain(err)
	}
	return out.print(r, priceListsText(r))
}

// priceListFile reads and checks a price list file, renaming it to name
// if one is given; every problem of the list is reported at once.
func priceListFile(path, name string) ([]byte, error) {
	if path == "" {
		return nil, ledger.Errorf(ledger.CodeInvalidArgument, "--file is required")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, ledger.Errorf(ledger.CodeInvalidArgument, "--file: %v", err)
	}
	if name == "" {
		if _, err := prices.Parse(b); err != nil {
			return nil, ledger.Errorf(ledger.CodeInvalidArgument, "%s: %v", path, err)
		}
		return b, nil
	}
	var l prices.List
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, ledger.Errorf(ledger.CodeInvalidArgument, "%s: %v", path, err)
	}
	l.Name = name
	if err := l.Validate(); err != nil {
		return nil, ledger.Errorf(ledger.CodeInvalidArgument, "%s: %v", path, err)
	}
	return json.Marshal(&l)
}

func priceListsText(r *ledger.PriceListsReply) string {
	if len(r.Lists) == 0 {
		return "no price lists are set (agentbill prices set --file prices/starter.json)"
	}
	var b strings.Builder
	for _, l := range r.Lists {
		fmt.Fprintf(&b, "%s  version %s  %d models  set %s  sha256 %s\n", l.PriceList, l.Version, l.Models,
			l.SetAt.Format("2006-01-02T15:04:05Z07:00"), l.Digest)
		if l.List != nil {
			for _, m := range l.List.Models {
				fmt.Fprintf(&b, "  %s%s  %s\n", m.ID, providerOf(m.Provider), ratesText(m.Rates))
			}
		}
	}
	return strings.TrimRight(b.String(), "\n")
}

func providerOf(p string) string {
	if p == "" {
		return ""
	}
	return " (" + p + ")"
}

func ratesText(r prices.Rates) string {
	var parts []string
	for _, k := range prices.Kinds {
		if v, ok := r[k]; ok {
			parts = append(parts, fmt.Sprintf("%s %s/M", k, v))
		}
	}
	return strings.Join(parts, ", ")
}
