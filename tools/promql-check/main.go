// Command promql-check parses PromQL expressions with Prometheus's own parser, for the deploy tests
// of the Helm chart's alerts and dashboard. It lives in the tools module so the agent's go.mod does not
// pull in Prometheus.
//
// It reads a JSON array of expressions on stdin and writes, for each, the metric names its selectors
// use or the parse error, as a JSON array in the same order. It exits 1 if any expression fails.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

type result struct {
	Expr    string   `json:"expr"`
	Metrics []string `json:"metrics,omitempty"`
	Error   string   `json:"error,omitempty"`
}

func main() {
	var exprs []string
	if err := json.NewDecoder(os.Stdin).Decode(&exprs); err != nil {
		fmt.Fprintln(os.Stderr, "promql-check: stdin must be a JSON array of strings:", err)
		os.Exit(2)
	}
	results, failed := check(exprs)
	if err := json.NewEncoder(os.Stdout).Encode(results); err != nil {
		fmt.Fprintln(os.Stderr, "promql-check:", err)
		os.Exit(2)
	}
	if failed {
		os.Exit(1)
	}
}

func check(exprs []string) ([]result, bool) {
	p := parser.NewParser(parser.Options{})
	results := make([]result, len(exprs))
	failed := false
	for i, e := range exprs {
		results[i].Expr = e
		expr, err := p.ParseExpr(e)
		if err != nil {
			results[i].Error = err.Error()
			failed = true
			continue
		}
		results[i].Metrics = metricNames(expr)
	}
	return results, failed
}

// metricNames lists the names every vector selector matches exactly (`foo{...}` or `{__name__="foo"}`).
func metricNames(expr parser.Expr) []string {
	var names []string
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		for _, m := range vs.LabelMatchers {
			if m.Name == labels.MetricName && m.Type == labels.MatchEqual && !slices.Contains(names, m.Value) {
				names = append(names, m.Value)
			}
		}
		return nil
	})
	slices.Sort(names)
	return names
}
