// Package crashtest holds the crash-test harness (in its tests): real
// nats-server processes (built from the nats-server module) and real
// `agentbill serve` processes on loopback, bounded concurrent load from the
// Go client, SIGKILL at random moments, restarts, and checks of the log
// against everything the clients were told. Run the short variant with the
// normal suite, the full one with -crash.full (docs/high-availability.md, "Crash tests").
package crashtest
