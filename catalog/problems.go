package catalog

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Problem is one validation finding at a position.
type Problem struct {
	Pos Position
	Msg string
}

// String formats the problem as `file:line:col: message`.
func (p Problem) String() string {
	if p.Pos.File == "" {
		return p.Msg
	}
	return p.Pos.String() + ": " + p.Msg
}

// ValidationError carries every problem found in an input, sorted by file,
// line, column and message. Loaders return it (wrapped or not) instead of
// stopping at the first problem.
type ValidationError struct {
	Problems []Problem
}

// Error prints one problem per line.
func (e *ValidationError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Problems collects validation findings; the zero value is ready to use.
type Problems struct {
	list []Problem
}

// Add records a problem at pos.
func (ps *Problems) Add(pos Position, format string, args ...any) {
	ps.list = append(ps.list, Problem{Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

// Len reports how many problems were recorded.
func (ps *Problems) Len() int { return len(ps.list) }

// Err returns nil when nothing was recorded, else a *ValidationError with the
// problems sorted and exact duplicates removed.
func (ps *Problems) Err() error {
	if len(ps.list) == 0 {
		return nil
	}
	out := slices.Clone(ps.list)
	slices.SortFunc(out, func(a, b Problem) int {
		return cmp.Or(
			cmp.Compare(a.Pos.File, b.Pos.File),
			cmp.Compare(a.Pos.Line, b.Pos.Line),
			cmp.Compare(a.Pos.Col, b.Pos.Col),
			cmp.Compare(a.Msg, b.Msg),
		)
	})
	return &ValidationError{Problems: slices.Compact(out)}
}
