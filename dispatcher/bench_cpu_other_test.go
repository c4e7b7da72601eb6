//go:build !unix

package dispatcher

import "time"

// cpuTime is unknown here; the benchmarks then omit cpu-us/event.
func cpuTime() time.Duration { return 0 }
