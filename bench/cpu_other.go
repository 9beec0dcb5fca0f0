//go:build !unix

package bench

import "time"

// processCPU is not measured here: the CPU column stays empty.
func processCPU() time.Duration { return 0 }
