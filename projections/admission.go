package projections

import "sync"

// Fair admission: no customer may hold more than QueuedPerCustomerMax of
// the writer's queue. Without it one customer's flood (a retry loop, a
// burst of parallel runs) fills all RequestQueueMax places and every other
// customer is answered unavailable until it stops; with it, the flood
// waits (its excess is answered unavailable, and clients retry with
// backoff) while the others are decided in their turn, behind at most
// QueuedPerCustomerMax of its requests.
const (
	// QueuedPerCustomerMax bounds one customer's requests queued for the
	// writer: about one commit's worth at the load of this machine's
	// benchmarks (BENCHMARKS.md, "What we tried").
	QueuedPerCustomerMax = 64
)

// admission counts each customer's queued requests. Its map holds only
// customers with requests queued, so it is bounded by RequestQueueMax.
type admission struct {
	mu     sync.Mutex
	queued map[string]int
}

// admit takes a place in the queue for the customer, or reports false if
// it already holds QueuedPerCustomerMax.
func (a *admission) admit(customer string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := a.queued[customer]
	if n >= QueuedPerCustomerMax {
		return false
	}
	if a.queued == nil {
		a.queued = make(map[string]int)
	}
	a.queued[customer] = n + 1
	return true
}

// leave gives the customer's place back: its request left the queue.
func (a *admission) leave(customer string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if n := a.queued[customer]; n > 1 {
		a.queued[customer] = n - 1
	} else {
		delete(a.queued, customer)
	}
}
