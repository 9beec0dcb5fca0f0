package dashboard

import "time"

// SetCacheClock sets the clock of d's table cache (time.Now), so that a
// test can keep the cached table fresh for as long as it needs. Call it
// before the first request.
func SetCacheClock(d *Dashboard, now func() time.Time) { d.cacheNow = now }
