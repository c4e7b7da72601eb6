package cli

import (
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// DataPlaneGCPercent is the GC target of the data plane (the dispatcher
// and herald dev) when GOGC is not set. Its heap is small and short-lived
// (requests, messages in flight), so collecting at 4× the live heap
// instead of 2× costs a few MiB and saves CPU on every event.
const DataPlaneGCPercent = 300

// memoryLimitFraction is the part of the container's memory limit given to
// the Go heap when GOMEMLIMIT is not set.
const memoryLimitFraction = 0.9

// TuneGC applies DataPlaneGCPercent unless GOGC is set, and, unless
// GOMEMLIMIT is set, a soft memory limit of memoryLimitFraction of the
// cgroup's memory limit, so that the larger GC target never pushes the
// process past its container's limit: the runtime collects sooner when the
// heap nears it. getenv and cgroupLimit are the environment and the
// cgroup's limit in bytes (0 when none).
func TuneGC(getenv func(string) string, cgroupLimit func() int64) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(DataPlaneGCPercent)
	}
	if getenv("GOMEMLIMIT") == "" {
		if limit := cgroupLimit(); limit > 0 {
			debug.SetMemoryLimit(int64(float64(limit) * memoryLimitFraction))
		}
	}
}

// CgroupMemoryLimit reads the memory limit of this process's cgroup (v2,
// then v1); 0 when there is none or it cannot be read.
func CgroupMemoryLimit() int64 {
	for _, f := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		// "max", or v1's near-2^63 value, means no limit.
		if err != nil || n <= 0 || n >= 1<<62 {
			return 0
		}
		return n
	}
	return 0
}
