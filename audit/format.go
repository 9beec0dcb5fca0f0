package audit

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/agentbill/agentbill/events"
)

// Formats of a history.
const (
	FormatTable = "table"
	FormatJSON  = "json" // one JSON object per line
	FormatCSV   = "csv"
)

// RowWriter writes history rows in one format.
type RowWriter interface {
	Write(Row) error
	// Flush finishes the output.
	Flush() error
}

// NewRowWriter returns a writer for format, or an error naming the formats.
func NewRowWriter(w io.Writer, format string) (RowWriter, error) {
	switch format {
	case FormatTable:
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "SEQ\tTIME\tEVENT\tAGENT\tRESERVATION\tUNITS\tREASON\tUSED\tRESERVED\tREMAINING\tGRANTS\tFUNDED_BY\tSCOPES")
		return &tableWriter{tw: tw}, nil
	case FormatJSON:
		return &jsonWriter{enc: json.NewEncoder(w)}, nil
	case FormatCSV:
		cw := csv.NewWriter(w)
		err := cw.Write([]string{"seq", "at", "event_id", "type", "agent", "reservation", "units", "reason", "limit", "used", "reserved", "remaining",
			"grants", "grant", "funded_by", "counted_scopes"})
		return &csvWriter{cw: cw}, err
	}
	return nil, fmt.Errorf("format %q: use table, json or csv", format)
}

type tableWriter struct{ tw *tabwriter.Writer }

func (t *tableWriter) Write(r Row) error {
	_, err := fmt.Fprintf(t.tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
		r.Seq, r.At.Format(time.RFC3339), r.Type, dash(r.Agent), dash(r.Reservation), dash(r.Units), dash(r.Reason),
		r.Used, r.Reserved, r.Remaining, r.Grants, dash(fundedText(r.FundedBy)), dash(scopesText(r.CountedScopes)))
	return err
}

// fundedText is a charge's grants as GRANT:UNITS, separated by ';'.
func fundedText(fs []events.GrantDraw) string {
	parts := make([]string, len(fs))
	for i, f := range fs {
		parts[i] = f.GrantID + ":" + f.Units.String()
	}
	return strings.Join(parts, ";")
}

// scopesText is scope limits as DIMENSION=VALUE, separated by ';'.
func scopesText(ss []events.ScopeRef) string {
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = s.Dimension + "=" + s.Value
	}
	return strings.Join(parts, ";")
}

func (t *tableWriter) Flush() error { return t.tw.Flush() }

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

type jsonWriter struct{ enc *json.Encoder }

func (j *jsonWriter) Write(r Row) error { return j.enc.Encode(r) }
func (j *jsonWriter) Flush() error      { return nil }

type csvWriter struct{ cw *csv.Writer }

func (c *csvWriter) Write(r Row) error {
	return c.cw.Write([]string{strconv.FormatUint(r.Seq, 10), r.At.Format(time.RFC3339Nano), r.EventID, string(r.Type),
		r.Agent, r.Reservation, r.Units, r.Reason, r.Limit.String(), r.Used.String(), r.Reserved.String(), r.Remaining.String(),
		r.Grants.String(), r.Grant, fundedText(r.FundedBy), scopesText(r.CountedScopes)})
}

func (c *csvWriter) Flush() error {
	c.cw.Flush()
	return c.cw.Error()
}
