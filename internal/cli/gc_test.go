package cli

import (
	"runtime/debug"
	"testing"
)

func TestTuneGC(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	noLimit := func() int64 { return 0 }

	TuneGC(env(nil), noLimit)
	if got := debug.SetGCPercent(100); got != DataPlaneGCPercent {
		t.Errorf("GOGC unset: GC percent %d, want %d", got, DataPlaneGCPercent)
	}
	TuneGC(env(map[string]string{"GOGC": "50"}), noLimit)
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GOGC set: GC percent changed to %d", got)
	}

	debug.SetMemoryLimit(1 << 40)
	TuneGC(env(nil), func() int64 { return 1000 << 20 })
	if got := debug.SetMemoryLimit(-1); got != 900<<20 {
		t.Errorf("cgroup limit 1000 MiB: memory limit %d, want 900 MiB", got)
	}
	debug.SetMemoryLimit(1 << 40)
	TuneGC(env(map[string]string{"GOMEMLIMIT": "100MiB"}), func() int64 { return 1000 << 20 })
	if got := debug.SetMemoryLimit(-1); got != 1<<40 {
		t.Errorf("GOMEMLIMIT set: memory limit changed to %d", got)
	}
}
