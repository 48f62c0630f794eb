package main

import (
	"context"

	"github.com/atlas-stream/atlas/internal/oracle"
	"github.com/atlas-stream/atlas/producers/sim"
)

// diffWithTruth is the oracle of e2e/aggregates_test.go: every difference
// between what the views and late_events of the stack's database hold
// and the simulator's ground truth, as readable lines, and the number of
// rows and late events compared.
func (s *stack) diffWithTruth(truth *sim.Truth) (int, []string, error) {
	conn, err := s.reader()
	if err != nil {
		return 0, nil, err
	}
	defer conn.Close()

	return oracle.Diff(context.Background(), conn, truth)
}
