package ledger

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/agentbill/agentbill/events"
	"github.com/agentbill/agentbill/prices"
)

// Priced usage (docs/PROTOCOL.md, "Priced usage"). A price list is set by
// a prices_set event and held whole in the state; a customer's usage is
// priced with the list its budget names (price_list), or the list named
// "default". The charge and its breakdown go into the recorded event, so
// replay never prices again.

// PriceListBytesMax bounds a price list request's body: under NATS's 1 MiB
// max_payload with room for the commit around its event (the starter list
// of about 1,000 models is about a third of it).
const PriceListBytesMax = 512 * 1024

// PricesReply answers a prices request: the list as now set, and whether
// this request changed it (a list set again with the same version and
// prices changes nothing).
type PricesReply struct {
	PriceList string `json:"list"`
	Version   string `json:"version"`
	Digest    string `json:"digest"`
	Models    int    `json:"models"`
	Changed   bool   `json:"changed"`
	// Partition and Partitions say which writer answered, of how many:
	// a list is set when every partition has answered (the writer fills
	// them in).
	Partition  int `json:"partition"`
	Partitions int `json:"partitions"`
}

// PriceListInfo is one list as the price_lists request shows it.
type PriceListInfo struct {
	PriceList string       `json:"list"`
	Version   string       `json:"version"`
	Digest    string       `json:"digest"`
	Models    int          `json:"models"`
	SetAt     time.Time    `json:"set_at"`
	List      *prices.List `json:"prices,omitempty"`
}

// PriceListsReply answers a price_lists request.
type PriceListsReply struct {
	Lists []PriceListInfo `json:"lists"`
}

// priceList is a list as the state holds it.
type priceList struct {
	list   *prices.List
	digest string
	setAt  time.Time
	body   json.RawMessage // the event's body, for snapshots
}

// SetPrices decides a prices request: l must have passed Validate. It
// appends prices_set unless the list already has this version with these
// prices. A version already set with other prices is a conflict: a
// version names one set of prices forever.
func (s *State) SetPrices(l *prices.List, now time.Time) (*PricesReply, []*events.Envelope, error) {
	body, err := json.Marshal(l)
	if err != nil {
		return nil, nil, invalid("price list: %v", err)
	}
	if len(body) > PriceListBytesMax {
		return nil, nil, invalid("price list is %d bytes as stored, more than %d", len(body), PriceListBytesMax)
	}
	sum := sha256.Sum256(body)
	digest := hex.EncodeToString(sum[:])
	reply := &PricesReply{PriceList: l.Name, Version: l.Version, Digest: digest, Models: len(l.Models)}
	if cur := s.prices[l.Name]; cur != nil && cur.list.Version == l.Version {
		if cur.digest != digest {
			return nil, nil, Errorf(CodeConflict,
				"price list %q already has version %q with other prices; give the changed list a new version", l.Name, l.Version)
		}
		return reply, nil, nil
	}
	if _, ok := s.prices[l.Name]; !ok && len(s.prices) >= prices.ListsMax {
		return nil, nil, invalid("there are already %d price lists, the maximum", prices.ListsMax)
	}
	e := &events.Envelope{ID: s.NewID(), Type: events.TypePricesSet, V: events.Version, At: now.UTC(),
		Data: &events.PricesSet{PriceList: l.Name, Version: l.Version, Digest: digest, Models: len(l.Models), Body: body}}
	s.Apply(e)
	reply.Changed = true
	return reply, []*events.Envelope{e}, nil
}

// applyPrices folds prices_set in. The body was validated when it was
// decided; one that no longer parses means the log or this code is broken.
func (s *State) applyPrices(d *events.PricesSet, at time.Time) {
	l, err := prices.Parse(d.Body)
	if err != nil {
		panic(fmt.Sprintf("agentbill: prices_set of %q in the log does not parse: %v", d.PriceList, err))
	}
	if s.prices == nil {
		s.prices = make(map[string]*priceList)
	}
	s.prices[d.PriceList] = &priceList{list: l, digest: d.Digest, setAt: at, body: d.Body}
}

// PriceLists shows every price list (name "") or one with its prices.
func (s *State) PriceLists(name string) (*PriceListsReply, error) {
	r := &PriceListsReply{Lists: []PriceListInfo{}}
	if name != "" {
		pl := s.prices[name]
		if pl == nil {
			return nil, Errorf(CodeNotFound, "no price list %q is set", name)
		}
		return &PriceListsReply{Lists: []PriceListInfo{pl.info(pl.list)}}, nil
	}
	for _, pl := range s.prices {
		r.Lists = append(r.Lists, pl.info(nil))
	}
	sort.Slice(r.Lists, func(i, j int) bool { return r.Lists[i].PriceList < r.Lists[j].PriceList })
	return r, nil
}

func (pl *priceList) info(full *prices.List) PriceListInfo {
	return PriceListInfo{PriceList: pl.list.Name, Version: pl.list.Version, Digest: pl.digest,
		Models: len(pl.list.Models), SetAt: pl.setAt, List: full}
}

// listOf returns the price list that prices c's usage, and its name.
func (s *State) listOf(c *Customer) (*prices.List, string) {
	name := prices.DefaultList
	if c != nil && c.Policy != nil && c.Policy.PriceList != "" {
		name = c.Policy.PriceList
	}
	if pl := s.prices[name]; pl != nil {
		return pl.list, name
	}
	return nil, name
}

// recordCharge is what a record is charged, and how it was priced.
type recordCharge struct {
	units    events.Units
	pricing  *events.Pricing
	unpriced string
}

// priceRecord decides a record's charge before anything is emitted. Units
// are charged as given. Usage is priced with the customer's list; usage
// that cannot be priced is charged the units the record also gave, else
// its hold (never a silent zero), and says why. With neither, it is an
// error: the record must say what to charge.
func (d *decision) priceRecord(r *RecordRequest, c *Customer, hold *Reservation) (recordCharge, error) {
	if r.Usage == nil {
		return recordCharge{units: *r.Units}, nil
	}
	l, name := d.s.listOf(c)
	var why string
	if l == nil {
		why = fmt.Sprintf("no price list %q is set", name)
	} else {
		ch, err := l.Price(*r.Usage)
		var up *prices.Unpriced
		switch {
		case err == nil:
			if err := ch.Total.CheckRequestBound(); err != nil {
				return recordCharge{}, invalid("usage priced at %s: %v", ch.Total, err)
			}
			return recordCharge{units: ch.Total, pricing: &ch}, nil
		case errors.As(err, &up):
			why = up.Reason
		default:
			return recordCharge{}, invalid("%v", err)
		}
	}
	switch {
	case r.Units != nil:
		return recordCharge{units: *r.Units, unpriced: why}, nil
	case hold != nil:
		return recordCharge{units: hold.Units, unpriced: why}, nil
	}
	return recordCharge{}, invalid("cannot price usage: %s; this record settles no open reservation, so give units too", why)
}

// priceEstimate prices a preflight's usage_estimate (its worst case) and
// returns the estimate in units. An estimate the list cannot price falls
// back to estimated_units when the request gave them, else it is an error
// naming the model and the list.
func (d *decision) priceEstimate(r *PreflightRequest, c *Customer) (events.Units, *events.Pricing, error) {
	if r.UsageEstimate == nil {
		return *r.EstimatedUnits, nil, nil
	}
	l, name := d.s.listOf(c)
	var why string
	if l == nil {
		why = fmt.Sprintf("no price list %q is set", name)
	} else {
		ch, err := l.PriceEstimate(*r.UsageEstimate)
		var up *prices.Unpriced
		switch {
		case err == nil:
			if ch.Total.Sign() <= 0 {
				return events.Zero, nil, invalid("usage_estimate for model %q prices at 0 in list %q: give estimated_units", r.UsageEstimate.Model, name)
			}
			if err := ch.Total.CheckRequestBound(); err != nil {
				return events.Zero, nil, invalid("usage_estimate priced at %s: %v", ch.Total, err)
			}
			return ch.Total, &ch, nil
		case errors.As(err, &up):
			why = up.Reason
		default:
			return events.Zero, nil, invalid("usage_estimate: %v", err)
		}
	}
	if r.EstimatedUnits != nil {
		return *r.EstimatedUnits, nil, nil
	}
	return events.Zero, nil, invalid("usage_estimate: %s (give estimated_units to preflight a model the list does not price)", why)
}

// outputFitting is the output tokens a hold of units covers, for a priced
// estimate.
func (d *decision) outputFitting(r *PreflightRequest, c *Customer, units events.Units) int64 {
	l, _ := d.s.listOf(c)
	if l == nil || r.UsageEstimate == nil {
		return 0
	}
	n, err := l.OutputTokensFitting(*r.UsageEstimate, units)
	if err != nil {
		return 0
	}
	return n
}
