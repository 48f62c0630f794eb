package warehouse

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// ServerVersion is the major.minor.patch of a ClickHouse server, enough to
// decide which SQL features a migration may use. Builds are ignored.
type ServerVersion struct {
	Major, Minor, Patch int
}

// ParseServerVersion parses what SELECT version() returns ("18.16.1",
// "24.3.1.2672", "25.8.1.1-lts") as well as the short forms used by
// migration templates ("20.1", "21").
func ParseServerVersion(s string) (ServerVersion, error) {
	s = strings.TrimSpace(s)
	if i := strings.IndexAny(s, "-+ "); i >= 0 {
		s = s[:i]
	}
	parts := strings.Split(s, ".")
	if s == "" || len(parts) > 4 {
		return ServerVersion{}, fmt.Errorf("cannot parse ClickHouse version %q: want major[.minor[.patch[.build]]]", s)
	}
	var nums [3]int
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return ServerVersion{}, fmt.Errorf("cannot parse ClickHouse version %q: %q is not a number", s, p)
		}
		if i < len(nums) {
			nums[i] = n
		}
	}
	return ServerVersion{Major: nums[0], Minor: nums[1], Patch: nums[2]}, nil
}

// AtLeast reports whether v is the same as or newer than o.
func (v ServerVersion) AtLeast(o ServerVersion) bool {
	if v.Major != o.Major {
		return v.Major > o.Major
	}
	if v.Minor != o.Minor {
		return v.Minor > o.Minor
	}
	return v.Patch >= o.Patch
}

func (v ServerVersion) String() string {
	return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch)
}

// DetectVersion asks the server for its version with SELECT version().
func DetectVersion(ctx context.Context, conn driver.Conn) (ServerVersion, error) {
	var s string
	if err := conn.QueryRow(ctx, "SELECT version()").Scan(&s); err != nil {
		return ServerVersion{}, fmt.Errorf("cannot detect the ClickHouse version: %w", err)
	}
	v, err := ParseServerVersion(s)
	if err != nil {
		return ServerVersion{}, fmt.Errorf("cannot detect the ClickHouse version: %w", err)
	}
	return v, nil
}
