// Package doctor runs `atlas doctor`: a list of independent checks of the
// services Atlas needs and of the users it connects as, each reported in
// plain words with a hint at the fix.
package doctor

import (
	"context"
	"fmt"
	"io"
	"time"
)

// Check is one named probe. Run returns a short description of what it
// found, or an error that says what is wrong; Hint, shown only on failure,
// says what to do about it.
type Check struct {
	Name string
	Hint string
	Run  func(ctx context.Context) (string, error)
}

// Result is the outcome of one Check.
type Result struct {
	Name   string
	Detail string
	Err    error
	Took   time.Duration
}

// Run runs every check in order, each bounded by timeout, writes one line
// per check to w, and returns the results. Checks run even after one fails,
// so the report is complete.
func Run(ctx context.Context, w io.Writer, timeout time.Duration, checks []Check) []Result {
	results := make([]Result, 0, len(checks))
	for _, c := range checks {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		start := time.Now()
		detail, err := c.Run(cctx)
		cancel()
		r := Result{Name: c.Name, Detail: detail, Err: err, Took: time.Since(start)}
		results = append(results, r)
		if err != nil {
			fmt.Fprintf(w, "FAIL  %-34s %v\n", c.Name, err)
			if c.Hint != "" {
				fmt.Fprintf(w, "      %-34s → %s\n", "", c.Hint)
			}
			continue
		}
		fmt.Fprintf(w, "ok    %-34s %s\n", c.Name, detail)
	}
	return results
}

// Failed counts the results with an error.
func Failed(rs []Result) int {
	n := 0
	for _, r := range rs {
		if r.Err != nil {
			n++
		}
	}
	return n
}
