// Package ledger is AgentBill's domain: budgets, periods, reservations and
// the decisions on them. State.Decide answers one command (a *Request
// type: normalised, validated, checked against its idempotency key) with a
// reply and the events that record the decision; State.Apply folds one
// event into the state and cannot fail, and replay uses Apply alone. It
// imports only the standard library and events, and reads no clock:
// time is passed in. See README.md for its invariants.
package ledger
