package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
)

// startProfiles writes a CPU profile of the whole process to $BYOB_AGENT_CPUPROFILE and, as it ends,
// a heap profile to $BYOB_AGENT_MEMPROFILE (either may be unset): `make bench -profile` and the
// README's Performance section read them with `go tool pprof`. The returned function ends both.
func startProfiles() (stop func()) {
	var stops []func()
	if path := os.Getenv("BYOB_AGENT_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "byob-agent: CPU profile:", err)
		} else {
			stops = append(stops, func() { pprof.StopCPUProfile(); f.Close() })
		}
	}
	if path := os.Getenv("BYOB_AGENT_MEMPROFILE"); path != "" {
		stops = append(stops, func() {
			f, err := os.Create(path)
			if err == nil {
				runtime.GC() // the heap as it is live, not as it was at the last GC
				err = pprof.WriteHeapProfile(f)
				err = errors.Join(err, f.Close())
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, "byob-agent: heap profile:", err)
			}
		})
	}
	return func() {
		for _, s := range stops {
			s()
		}
	}
}
