package audit

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"
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
		fmt.Fprintln(tw, "SEQ\tTIME\tEVENT\tAGENT\tRESERVATION\tUNITS\tREASON\tUSED\tRESERVED\tREMAINING")
		return &tableWriter{tw: tw}, nil
	case FormatJSON:
		return &jsonWriter{enc: json.NewEncoder(w)}, nil
	case FormatCSV:
		cw := csv.NewWriter(w)
		err := cw.Write([]string{"seq", "at", "event_id", "type", "agent", "reservation", "units", "reason", "limit", "used", "reserved", "remaining"})
		return &csvWriter{cw: cw}, err
	}
	return nil, fmt.Errorf("format %q: use table, json or csv", format)
}

type tableWriter struct{ tw *tabwriter.Writer }

func (t *tableWriter) Write(r Row) error {
	_, err := fmt.Fprintf(t.tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
		r.Seq, r.At.Format(time.RFC3339), r.Type, dash(r.Agent), dash(r.Reservation), dash(r.Units), dash(r.Reason),
		r.Used, r.Reserved, r.Remaining)
	return err
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
		r.Agent, r.Reservation, r.Units, r.Reason, r.Limit.String(), r.Used.String(), r.Reserved.String(), r.Remaining.String()})
}

func (c *csvWriter) Flush() error {
	c.cw.Flush()
	return c.cw.Error()
}
