//go:build integration

package e2e

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/atlas-stream/atlas/producers/sim"
	"github.com/atlas-stream/atlas/topology"
)

// TestReplayFromTheEarliestOffsetLeavesEveryTableUnchanged runs the
// aggregates consumer over a simulation, takes an order-independent digest
// of every table and view of the database, deletes the group's committed
// offsets and runs the consumer again from the earliest offset into the
// same tables: every digest must be the same.
func TestReplayFromTheEarliestOffsetLeavesEveryTableUnchanged(t *testing.T) {
	s := newStack(t, 6)
	truthPath := filepath.Join(s.dir, "truth.json")
	s.atlas("simulate", "--seed", "1414", "--events", "60000", "--truth", truthPath,
		"--out-of-order-rate", "0.05", "--late-rate", "0.01", "--duplicate-rate", "0.01")
	group := s.topo.GroupID(topology.AggregatesGroup)
	inputs := []string{s.topo.Name(topology.Playback), s.topo.Name(topology.Browse), s.topo.Name(topology.Catalog)}

	run := func(name string) float64 {
		ops := freeAddr(t)
		c := s.start(name, "run", "aggregates", "--ops-addr", ops, "--flush-interval", "300ms")
		s.waitReady(c, ops, time.Minute)
		s.waitDrained(3*time.Minute, group, inputs...)
		rows := metric(ops, "atlas_chsink_rows_total")
		c.signal(syscall.SIGTERM)
		if err := c.wait(30 * time.Second); err != nil {
			t.Fatalf("%s: the consumer did not stop cleanly: %v\n%s", name, err, lastLines(c.output(), 20))
		}
		return rows
	}
	firstRows := run("first")
	truth, err := sim.LoadTruth(truthPath)
	if err != nil {
		t.Fatal(err)
	}
	n := s.compareWithTruth(truth)
	before := s.digests()

	// Forget where the group was: the next member starts every partition
	// at the earliest offset, with no watermark and no closed windows.
	client, err := s.kafka.Client()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The member left on SIGTERM, but the coordinator may still be
	// completing the rebalance that follows: retry while the group is not
	// empty.
	deleted := time.Now()
	for {
		res, err := client.DeleteGroups(ctx, &kafka.DeleteGroupsRequest{GroupIDs: []string{group}})
		if err == nil {
			err = res.Errors[group]
		}
		if err == nil {
			break
		}
		if !errors.Is(err, kafka.NonEmptyGroup) || ctx.Err() != nil {
			t.Fatalf("cannot delete group %s: %v", group, errors.Join(err, ctx.Err()))
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("group %s deleted after %s", group, time.Since(deleted).Round(10*time.Millisecond))
	fetch := map[string][]int{}
	for _, topic := range inputs[:2] {
		for p := 0; p < 6; p++ {
			fetch[topic] = append(fetch[topic], p)
		}
	}
	commits, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: fetch})
	if err != nil {
		t.Fatal(err)
	}
	for topic, ps := range commits.Topics {
		for _, p := range ps {
			if p.CommittedOffset >= 0 {
				t.Fatalf("%s/%d still has a committed offset %d after the group was deleted", topic, p.Partition, p.CommittedOffset)
			}
		}
	}

	replayRows := run("replay")
	after := s.digests()
	var diffs, figures []string
	for _, name := range sortedKeys(before) {
		if before[name] != after[name] {
			diffs = append(diffs, fmt.Sprintf("%s: %v before the replay, %v after", name, before[name], after[name]))
		}
		if before[name].Rows > 0 {
			figures = append(figures, fmt.Sprintf("%s %d", name, before[name].Rows))
		}
	}
	for _, name := range sortedKeys(after) {
		if _, ok := before[name]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: appeared during the replay", name))
		}
	}
	if len(diffs) > 0 {
		t.Fatalf("the replay from the earliest offset changed %d of %d tables and views:\n%s", len(diffs), len(before), strings.Join(diffs, "\n"))
	}
	if replayRows < 1 {
		t.Fatalf("the replay wrote no rows: it did not start from the earliest offset")
	}
	t.Logf("replay from the earliest offset rewrote %.0f rows (the first run wrote %.0f); all %d tables and views have the same digest (rows read with FINAL: %s); the first run equalled the ground truth in all %d rows and late events",
		replayRows, firstRows, len(before), strings.Join(figures, ", "), n)
}
