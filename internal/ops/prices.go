package ops

import (
	"context"
	"encoding/json"
	"net/url"

	"github.com/agentbill/agentbill/ledger"
	"github.com/agentbill/agentbill/prices"
)

// pricesHint ends the refusal of a price-list call by a key bound to one
// customer: a price list is every customer's.
const pricesHint = " (price lists concern every customer: use an admin key bound to no customer)"

// PricesRequest is a price list to set (docs/PROTOCOL.md, "Price lists").
type PricesRequest struct{ prices.List }

// Customer is "": a price list concerns no one customer.
func (*PricesRequest) Customer() string { return "" }

// PriceListsQuery names the list to show with its prices ("": every
// list, without them).
type PriceListsQuery struct {
	List string `json:"list,omitempty"`
}

// Customer is "": a price list concerns no one customer.
func (*PriceListsQuery) Customer() string { return "" }

func priceListsQuery(_ func(string) string, q url.Values) (Request, error) {
	return &PriceListsQuery{List: q.Get("list")}, nil
}

// everyone refuses a price-list call resolved to one customer: only a
// key bound to none may set or read the lists every customer is priced by.
func everyone(cid string) error {
	if cid != "" {
		return ledger.Errorf(ledger.CodePermissionDenied, "price lists concern every customer; this call is bound to customer %s%s", cid, pricesHint)
	}
	return nil
}

func setPrices(ctx context.Context, b Backend, cid string, req Request) (any, error) {
	if err := everyone(cid); err != nil {
		return nil, err
	}
	r := req.(*PricesRequest)
	if err := r.List.Validate(); err != nil {
		return nil, invalid("%v", err)
	}
	body, err := json.Marshal(&r.List)
	if err != nil {
		return nil, invalid("price list: %v", err)
	}
	return b.Client.SetPrices(ctx, body)
}

func priceLists(ctx context.Context, b Backend, cid string, req Request) (any, error) {
	if err := everyone(cid); err != nil {
		return nil, err
	}
	return b.Client.PriceLists(ctx, req.(*PriceListsQuery).List)
}
