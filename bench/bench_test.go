package main

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestSmoke runs every measurement with a handful of teams against the real backends, with the state
// in the bbolt file and in PostgreSQL, and checks that the results have every key with a sane value.
// It asserts no time: benchmarks are not timed tests.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts SeaweedFS and builds the agent")
	}
	for _, backend := range []string{"bolt", "postgres"} {
		t.Run(backend, func(t *testing.T) { smokeRun(t, backend) })
	}
}

func smokeRun(t *testing.T, backend string) {
	out := filepath.Join(t.TempDir(), "results.json")
	if err := run(t.Context(), []string{"-smoke", "-state", backend, "-out", out}, io.Discard); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]float64
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("results are not a JSON object of numbers: %v\n%s", err, b)
	}
	for k := range got {
		if !slices.Contains(keys, k) {
			t.Errorf("unexpected key %s", k)
		}
	}
	// What the smoke run must have seen, whatever the machine: work done, never how fast.
	exact := map[string]float64{"noop_10k_mutations": 0, "noop_10k_wandb_requests": 1}
	for _, k := range keys {
		v, ok := got[k]
		switch want, isExact := exact[k]; {
		case !ok:
			t.Errorf("missing key %s", k)
		case isExact && v != want:
			t.Errorf("%s = %g, want %g", k, v, want)
		case !isExact && v <= 0:
			t.Errorf("%s = %g, want > 0", k, v)
		}
	}
	// Every team costs the naive baseline one W&B lookup in its no-op: 5 teams, 5 requests.
	if v := got["baseline_noop_10k_wandb_requests"]; v != float64(smoke.noop) {
		t.Errorf("baseline_noop_10k_wandb_requests = %g, want %d (one lookup a team)", v, smoke.noop)
	}
}
