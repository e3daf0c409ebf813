//go:build ignore

// chaos_table prints the reports the chaos tests append to $BYOB_CHAOS_REPORT (one JSON object a line)
// as a table; scripts/chaos.sh runs it. It exits 1 if a report is missing, failed, or counts
// duplicates, strays, lost writes or secrets.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
)

type report struct {
	Test         string         `json:"test"`
	Seed         uint64         `json:"seed"`
	Passed       bool           `json:"passed"`
	Kills        int            `json:"kills"`
	KillsMidWork int            `json:"killsMidWork"`
	KillsBy      map[string]int `json:"killsBy"`
	Faults       map[string]int `json:"faults"`
	Teams        int            `json:"teams"`
	Converged    int            `json:"converged"`
	Duplicates   int            `json:"duplicates"`
	Strays       int            `json:"strays"`
	Lost         int            `json:"lost"`
	Acknowledged int            `json:"acknowledged"`
	Secrets      int            `json:"secretsFound"`
	ConvergeSec  float64        `json:"convergeSeconds"`
	TotalSec     float64        `json:"totalSeconds"`
	// TestChaosHA only.
	Failovers        int     `json:"failovers"`
	MaxLeaderlessSec float64 `json:"maxLeaderlessSeconds"`
	StaleWrites      int     `json:"staleWrites"`
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: go run scripts/chaos_table.go REPORT")
		os.Exit(2)
	}
	reports, err := read(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos_table:", err)
		os.Exit(1)
	}
	if len(reports) == 0 {
		fmt.Fprintln(os.Stderr, "chaos_table: no chaos test reported (did the tests build and run?)")
		os.Exit(1)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TEST\tRESULT\tKILLS\tMID-WORK\tFAULTS\tTEAMS\tCONVERGED\tDUPLICATES\tSTRAYS\tACKED WRITES\tLOST\tSECRETS\tCONVERGE\tTOTAL")
	bad := false
	for _, r := range reports {
		result := "PASS"
		if !r.Passed {
			result = "FAIL"
		}
		bad = bad || !r.Passed || r.Duplicates+r.Strays+r.Lost+r.Secrets+r.StaleWrites > 0
		acked := "-" // only the daemon test pushes writes
		if r.Acknowledged > 0 {
			acked = fmt.Sprint(r.Acknowledged)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%d\t%d\t%.1fs\t%.1fs\n", r.Test, result, r.Kills, r.KillsMidWork, sum(r.Faults),
			r.Teams, r.Converged, r.Duplicates, r.Strays, acked, r.Lost, r.Secrets, r.ConvergeSec, r.TotalSec)
	}
	tw.Flush()
	for _, r := range reports {
		fmt.Printf("\n%s (seed %d)\n  kills by: %s\n  faults:   %s\n", r.Test, r.Seed, list(r.KillsBy), list(r.Faults))
		if r.Failovers > 0 {
			fmt.Printf("  replicas: %d failovers, at most %.1fs without a leader, %d stale-epoch writes\n", r.Failovers, r.MaxLeaderlessSec, r.StaleWrites)
		}
	}
	if bad {
		os.Exit(1)
	}
}

func read(path string) ([]report, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []report
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		var r report
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		out = append(out, r)
	}
	return out, sc.Err()
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// list is "k=v, ..." in key order, or "none".
func list(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
