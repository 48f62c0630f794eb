//go:build integration

package secure

import (
	"context"
	"testing"

	"github.com/atlas-stream/atlas/internal/oracle"
	"github.com/atlas-stream/atlas/producers/sim"
	"github.com/atlas-stream/atlas/schemas/warehouse"
)

// diffWithTruth compares every per-minute row the views return, and every
// late event, with the simulator's ground truth, reading as the dashboards
// do (the reader user, through the views): the oracle the e2e tests and
// make bench share. It returns how many rows and late events the truth
// holds and every difference as a readable line.
func diffWithTruth(t *testing.T, reader warehouse.Config, truth *sim.Truth) (int, []string) {
	t.Helper()
	ctx := context.Background()
	conn, err := warehouse.Open(ctx, reader)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	n, diffs, err := oracle.Diff(ctx, conn, truth)
	if err != nil {
		t.Fatal(err)
	}
	return n, diffs
}
