package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/internal/retry"
	"github.com/agentbill/agentbill/ledger"
)

// PartitionsMax bounds the answers SetPrices gathers: one per writer
// (events.PartitionsMax partitions at most).
const PartitionsMax = events.PartitionsMax

// SetPrices sets a price list (admin): list is the list's JSON
// (docs/PROTOCOL.md, "Price lists"). Every writer (each partition of a
// partitioned ledger) answers; SetPrices returns once all have, so every
// later charge is priced with this version wherever its customer lives. A
// partition that did not answer in time is asked again (setting the same
// version twice changes nothing); if some still have not answered,
// SetPrices returns unavailable naming them, and may simply be called
// again.
func (c *Client) SetPrices(ctx context.Context, list []byte) (*ledger.PricesReply, error) {
	if len(list) > ledger.PriceListBytesMax {
		return nil, ledger.Errorf(ledger.CodeInvalidArgument, "price list is %d bytes, more than %d", len(list), ledger.PriceListBytesMax)
	}
	got := map[int]*ledger.PricesReply{}
	err := retry.Do(ctx, c.retryPolicy(), func(ctx context.Context) error {
		return c.gatherPrices(ctx, list, got)
	})
	if err != nil {
		return nil, err
	}
	var out ledger.PricesReply
	for _, r := range got {
		changed := out.Changed || r.Changed
		out = *r
		out.Changed = changed
	}
	out.Partition = 0
	return &out, nil
}

// gatherPrices sends the list once and collects answers into got until
// every partition has answered (nil), or the attempt's timeout passes
// (unavailable, naming the partitions missing).
func (c *Client) gatherPrices(ctx context.Context, list []byte, got map[int]*ledger.PricesReply) error {
	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	inbox := c.nc.NewRespInbox()
	sub, err := c.nc.SubscribeSync(inbox)
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()
	if err := c.nc.PublishRequest(events.PricesSubject, inbox, list); err != nil {
		return err
	}
	want := 0
	for n := 0; n < PartitionsMax; n++ {
		msg, err := sub.NextMsgWithContext(actx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if denied := c.denied(events.PricesSubject); denied != nil {
				return denied
			}
			return ledger.Errorf(ledger.CodeUnavailable, "price list: %s", missing(got, want))
		}
		if len(msg.Data) == 0 && msg.Header.Get("Status") == "503" {
			return ledger.Errorf(ledger.CodeUnavailable, "no writer answers %s: %v", events.PricesSubject, nats.ErrNoResponders)
		}
		var r ledger.PricesReply
		if err := decodeReply(msg.Data, &r); err != nil {
			return err
		}
		got[r.Partition], want = &r, r.Partitions
		if len(got) >= want {
			return nil
		}
	}
	return ledger.Errorf(ledger.CodeInternal, "price list: more than %d answers", PartitionsMax)
}

// missing says which partitions have not answered.
func missing(got map[int]*ledger.PricesReply, want int) string {
	if want == 0 {
		return "no writer answered"
	}
	var answered, not []int
	for p := range want {
		if got[p] != nil {
			answered = append(answered, p)
		} else {
			not = append(not, p)
		}
	}
	return fmt.Sprintf("set on partitions %v of %d; %v did not answer (setting the same version again is safe)", answered, want, not)
}

// PriceLists shows the price lists (admin): every list's name, version
// and digest, or with name one list and its prices.
func (c *Client) PriceLists(ctx context.Context, name string) (*ledger.PriceListsReply, error) {
	body, err := json.Marshal(struct {
		List string `json:"list,omitempty"`
	}{name})
	if err != nil {
		return nil, err
	}
	var out ledger.PriceListsReply
	err = retry.Do(ctx, c.retryPolicy(), func(ctx context.Context) error {
		return c.once(ctx, events.PriceListsSubject, body, &out)
	})
	if errors.Is(err, context.DeadlineExceeded) {
		return nil, ledger.Errorf(ledger.CodeUnavailable, "price lists: %v", err)
	}
	return &out, err
}
