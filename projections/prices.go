package projections

import (
	"bytes"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/ledger"
	"github.com/agentbill/agentbill/prices"
)

// PricesQueueMax bounds price-list requests waiting for the writer: an
// admin sets a list now and then; a burst past this is refused (retry).
const PricesQueueMax = 16

// pricesOp is a price-list request: set a list, or show them.
type pricesOp struct {
	set  *prices.List // nil: show
	show string       // the list to show with its prices ("": all, summaries)
}

// PriceListsRequest is the body of a price_lists request.
type PriceListsRequest struct {
	List string `json:"list,omitempty"`
}

// op names a pending request for the observer.
func (p *pending) op() events.Op {
	switch {
	case p.prices == nil:
		return p.cmd.Op()
	case p.prices.set != nil:
		return events.OpPrices
	}
	return events.OpPriceLists
}

// receivePrices is receive for the price-list subjects: they name no
// customer, so they skip admission, and every partition's writer answers.
func (w *Writer) receivePrices(m *nats.Msg) {
	if m.Reply == "" {
		return
	}
	if !w.ready.Load() {
		w.respondErr(m, ledger.Errorf(ledger.CodeUnavailable, "the writer is not serving; retry"))
		return
	}
	op, err := DecodePrices(m.Subject, m.Data)
	if err != nil {
		w.respondErr(m, err)
		return
	}
	select {
	case w.pricesIn <- &pending{msg: m, prices: op, at: time.Now()}: // arrival, as receive's (w.now is the loop's)
	default:
		w.respondErr(m, ledger.Errorf(ledger.CodeUnavailable, "%d price-list requests are already waiting; retry", PricesQueueMax))
	}
}

// DecodePrices decodes a price-list request: a list to set (validated, every
// problem reported at once) or a list to show.
func DecodePrices(subject string, body []byte) (*pricesOp, error) {
	if len(body) > ledger.PriceListBytesMax {
		return nil, ledger.Errorf(ledger.CodeInvalidArgument, "request body is %d bytes, more than %d (ledger.PriceListBytesMax)", len(body), ledger.PriceListBytesMax)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	if subject == events.PriceListsSubject {
		var r PriceListsRequest
		if err := decodeStrict(body, &r); err != nil {
			return nil, err
		}
		return &pricesOp{show: r.List}, nil
	}
	var l prices.List
	if err := decodeStrict(body, &l); err != nil {
		return nil, err
	}
	if err := l.Validate(); err != nil {
		return nil, ledger.Errorf(ledger.CodeInvalidArgument, "%v", err)
	}
	return &pricesOp{set: &l}, nil
}

// decidePrices decides a price-list request in the writer's loop.
func (w *Writer) decidePrices(op *pricesOp) (ledger.Reply, []*events.Envelope, error) {
	if op.set == nil {
		r, err := w.state.PriceLists(op.show)
		return r, nil, err
	}
	r, evs, err := w.state.SetPrices(op.set, w.now())
	if err != nil {
		return nil, nil, err
	}
	r.Partition, r.Partitions = w.cfg.Partition, max(1, w.cfg.Partitions)
	return r, evs, nil
}
