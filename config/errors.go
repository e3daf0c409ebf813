package config

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Problem is one thing wrong with the configuration, located in the file that holds it.
type Problem struct {
	File   string
	Line   int    // 1-based; 0 when unknown (e.g. the file cannot be read)
	Column int    // 1-based; 0 when unknown (the YAML parser reports lines only)
	Field  string // path of the value, e.g. "profiles.main.kms.keyArn" or "teams[3].name"; empty for the whole file
	Msg    string
}

// String formats the problem as "file:line:col: field: msg", leaving out the parts that are unknown.
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
		if p.Column > 0 {
			fmt.Fprintf(&b, ":%d", p.Column)
		}
	}
	b.WriteString(": ")
	if p.Field != "" {
		b.WriteString(p.Field)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Errors is every problem Load found, in file order. Load reports them all at once so that one edit
// fixes the file, not one edit per problem.
type Errors struct {
	Problems []Problem
}

// Error prints one problem per line.
func (e *Errors) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// sortProblems orders problems by file (in the order the files were read), then position.
func sortProblems(ps []Problem, files []string) {
	slices.SortStableFunc(ps, func(a, b Problem) int {
		return cmp.Or(
			cmp.Compare(slices.Index(files, a.File), slices.Index(files, b.File)),
			cmp.Compare(a.Line, b.Line),
			cmp.Compare(a.Column, b.Column),
		)
	})
}
