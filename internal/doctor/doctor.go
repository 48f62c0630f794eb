// Package doctor runs `atlas doctor`: a list of independent checks of the
// services Atlas needs and of the users it connects as, each reported in
// plain words with a hint at the fix.
package doctor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
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

// Result is the outcome of one Check. Err is nil when the check passed;
// a Warning when it found something worth a look that is not a failure.
type Result struct {
	Name   string
	Detail string
	Err    error
	Took   time.Duration
}

// warning is an error that Run reports as "warn" and Failed does not count.
type warning struct{ err error }

func (w *warning) Error() string { return w.err.Error() }
func (w *warning) Unwrap() error { return w.err }

// Warning returns an error that marks a finding as worth a look but not a
// failure (a consumer group that never ran on a fresh setup): Run prints
// it as "warn", with the check's hint, and Failed does not count it.
func Warning(format string, args ...any) error {
	return &warning{fmt.Errorf(format, args...)}
}

// IsWarning reports whether err came from Warning.
func IsWarning(err error) bool {
	var w *warning
	return errors.As(err, &w)
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
			tag := "FAIL"
			if IsWarning(err) {
				tag = "warn"
			}
			fmt.Fprintf(w, "%-4s  %-34s %v\n", tag, c.Name, err)
			if c.Hint != "" {
				fmt.Fprintf(w, "      %-34s → %s\n", "", c.Hint)
			}
			continue
		}
		fmt.Fprintf(w, "ok    %-34s %s\n", c.Name, detail)
	}
	return results
}

// Failed counts the results with an error that is not a warning.
func Failed(rs []Result) int {
	n := 0
	for _, r := range rs {
		if r.Err != nil && !IsWarning(r.Err) {
			n++
		}
	}
	return n
}

// Warned counts the results with a warning.
func Warned(rs []Result) int {
	n := 0
	for _, r := range rs {
		if IsWarning(r.Err) {
			n++
		}
	}
	return n
}

// Rights are the settings of a ClickHouse session that decide what its
// user may do, as system.settings shows them.
type Rights struct {
	// Readonly is "0" (may write), "1" (may only read, and change no
	// setting) or "2" (may only read, and change settings).
	Readonly string
	// AllowDDL is "1" when the user may create, alter and drop tables.
	AllowDDL string
}

// Job names the three ClickHouse users of Atlas.
type Job string

// The three users: the admin runs migrations, the writer is the
// consumers' (rows, never DDL), the reader the dashboards' and queries'.
const (
	Admin  Job = "admin"
	Writer Job = "writer"
	Reader Job = "reader"
)

// JudgeRights says whether a user's rights fit its job, and what they
// allow: the admin may write and run DDL; the writer may write but not run
// DDL (a consumer must not be able to drop a table); the reader may not
// write at all.
func JudgeRights(job Job, r Rights) (string, error) {
	writes, ddl := r.Readonly == "0", r.AllowDDL == "1" && r.Readonly == "0"
	switch job {
	case Admin:
		if !ddl {
			return "", fmt.Errorf("may not run DDL (readonly=%s, allow_ddl=%s): migrations need it", r.Readonly, r.AllowDDL)
		}
		return "writes and runs DDL", nil
	case Writer:
		if !writes {
			return "", fmt.Errorf("may not write (readonly=%s): the consumers insert rows", r.Readonly)
		}
		if ddl {
			return "", fmt.Errorf("may run DDL (allow_ddl=%s): consumers should not be able to drop tables", r.AllowDDL)
		}
		return "writes rows; DDL refused (allow_ddl=0)", nil
	case Reader:
		if writes {
			return "", fmt.Errorf("can write (readonly=0): dashboards must use a read-only user")
		}
		return fmt.Sprintf("read-only (readonly=%s)", r.Readonly), nil
	}
	return "", fmt.Errorf("BUG: unknown ClickHouse job %q", job)
}

// Group is what Kafka says about one role's consumer group.
type Group struct {
	Role string
	ID   string
	// Exists is false when the broker knows nothing of the group: no
	// member ever joined (or its offsets expired).
	Exists bool
	// State is the broker's group state: Stable, PreparingRebalance,
	// CompletingRebalance, Empty or Dead.
	State   string
	Members int
	// Partitions is how many input partitions the role reads, Committed
	// how many of them have a committed position.
	Partitions, Committed int
}

// JudgeGroup describes a role's consumer group. A group that never ran or
// has no member running is a Warning, not a failure: on a fresh setup, or
// while a role is stopped on purpose, that is expected.
func JudgeGroup(g Group) (string, error) {
	switch {
	case !g.Exists:
		return "", Warning("group %s has never run", g.ID)
	case g.State == "Dead":
		return "", Warning("group %s is Dead (being removed)", g.ID)
	case g.Members == 0:
		return "", Warning("group %s has no member running (%s; %d of %d partitions committed)",
			g.ID, orUnknown(g.State), g.Committed, g.Partitions)
	}
	members := "members"
	if g.Members == 1 {
		members = "member"
	}
	detail := fmt.Sprintf("group %s: %d %s, %s, %d of %d partitions committed", g.ID, g.Members, members, g.State, g.Committed, g.Partitions)
	if strings.Contains(g.State, "Rebalance") {
		detail += " (rebalancing: members are joining or leaving)"
	}
	return detail, nil
}

func orUnknown(s string) string {
	if s == "" {
		return "state unknown"
	}
	return s
}
