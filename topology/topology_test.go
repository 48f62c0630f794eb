package topology

import (
	"strings"
	"testing"
	"time"
)

func TestDefaultIsValid(t *testing.T) {
	for _, opts := range []Options{
		{},
		{Partitions: 12, ReplicationFactor: 3},
		{ReplicationFactor: 3, MinInsyncReplicas: 2, Prefix: "staging."},
		{Prefix: "test-0a1b2c3d."},
	} {
		if err := opts.Validate(); err != nil {
			t.Errorf("Options%+v.Validate() = %v, want nil", opts, err)
		}
		if err := Default(opts).Validate(); err != nil {
			t.Errorf("Default(%+v).Validate() = %v, want nil", opts, err)
		}
	}
}

func TestDefaultAppliesOptions(t *testing.T) {
	check := func(opts Options, name Topic, partitions, rf, isr int) {
		t.Helper()
		s, ok := Default(opts).Topic(name)
		if !ok {
			t.Fatalf("Default(%+v) has no topic %q", opts, name)
		}
		if s.Partitions != partitions || s.ReplicationFactor != rf || s.MinInsyncReplicas != isr {
			t.Errorf("Default(%+v) topic %q: partitions %d, rf %d, min isr %d; want %d, %d, %d",
				opts, name, s.Partitions, s.ReplicationFactor, s.MinInsyncReplicas, partitions, rf, isr)
		}
	}
	check(Options{}, Playback, 6, 1, 0)
	check(Options{}, Browse, 6, 1, 0)
	check(Options{}, EmbeddingsState, 6, 1, 0)
	check(Options{}, Catalog, 1, 1, 0)
	check(Options{}, Alerts, 3, 1, 0)
	check(Options{Partitions: 24}, Playback, 24, 1, 0)
	check(Options{Partitions: 24}, EmbeddingsState, 24, 1, 0)
	check(Options{Partitions: 24}, Catalog, 1, 1, 0)
	check(Options{ReplicationFactor: 3}, DLQ, 3, 3, 2)
	check(Options{ReplicationFactor: 3, MinInsyncReplicas: 3}, DLQ, 3, 3, 3)
	check(Options{ReplicationFactor: 1, MinInsyncReplicas: 1}, DLQ, 3, 1, 0)
}

func TestNames(t *testing.T) {
	check := func(tp Topology, topic Topic, group Group, wantTopic, wantGroup string) {
		t.Helper()
		if got := tp.Name(topic); got != wantTopic {
			t.Errorf("Name(%q) with prefix %q = %q, want %q", topic, tp.Prefix, got, wantTopic)
		}
		if got := tp.GroupID(group); got != wantGroup {
			t.Errorf("GroupID(%q) with prefix %q = %q, want %q", group, tp.Prefix, got, wantGroup)
		}
	}
	check(Default(Options{}), Playback, AggregatesGroup, "atlas.playback.v1", "atlas-aggregates")
	check(Default(Options{Prefix: "test-1."}), Playback, AggregatesGroup, "test-1.atlas.playback.v1", "test-1.atlas-aggregates")
}

func TestOptionsValidate(t *testing.T) {
	check := func(opts Options, wantErr string) {
		t.Helper()
		err := opts.Validate()
		if wantErr == "" {
			if err != nil {
				t.Errorf("Options%+v.Validate() = %v, want nil", opts, err)
			}
			return
		}
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("Options%+v.Validate() = %v, want an error containing %q", opts, err, wantErr)
		}
	}
	check(Options{}, "")
	check(Options{Partitions: -1}, "partitions must not be negative")
	check(Options{ReplicationFactor: -3}, "replication factor must not be negative")
	check(Options{ReplicationFactor: 3, MinInsyncReplicas: 4}, "min.insync.replicas must be between")
	check(Options{Prefix: "test run/1"}, `prefix "test run/1"`)
}

func TestValidate(t *testing.T) {
	// base returns a small valid topology that each case breaks in one way.
	base := func() Topology {
		return Topology{
			Topics: []TopicSpec{
				{Name: "in.a", Partitions: 4, ReplicationFactor: 1, Cleanup: CleanupDelete, Retention: time.Hour, Key: "user"},
				{Name: "in.b", Partitions: 4, ReplicationFactor: 1, Cleanup: CleanupDelete, Retention: time.Hour, Key: "user"},
				{Name: "table", Partitions: 1, ReplicationFactor: 1, Cleanup: CleanupCompact, Key: "item"},
				{Name: "state", Partitions: 4, ReplicationFactor: 1, Cleanup: CleanupCompact, Key: "user"},
				{Name: "out", Partitions: 2, ReplicationFactor: 1, Cleanup: CleanupDelete, Retention: time.Hour},
			},
			Roles: []RoleSpec{
				{Name: "producer", Writes: []Topic{"in.a", "in.b", "table"}},
				{Name: "worker", Group: "g", Reads: []Topic{"in.a", "in.b"}, Tables: []Topic{"table"}, Changelog: "state", Writes: []Topic{"out"}, Sinks: []string{"db"}},
			},
		}
	}
	tests := []struct {
		scenario string
		change   func(*Topology)
		wantErrs []string // substrings; none means valid
	}{
		{
			scenario: "A topology where every role reads co-partitioned, declared topics is valid.",
			change:   func(*Topology) {},
		},
		{
			scenario: "An empty topology is valid.",
			change:   func(tp *Topology) { *tp = Topology{} },
		},
		{
			scenario: "A topic declared twice is rejected.",
			change:   func(tp *Topology) { tp.Topics = append(tp.Topics, tp.Topics[0]) },
			wantErrs: []string{`topic "in.a": declared twice`},
		},
		{
			scenario: "A topic with a space in its name is rejected, because Kafka does not allow it.",
			change:   func(tp *Topology) { tp.Topics[4].Name = "out put"; tp.Roles[1].Writes = []Topic{"out put"} },
			wantErrs: []string{`topic "out put": only ASCII letters`},
		},
		{
			scenario: "A prefix that makes a topic name longer than 249 characters is rejected.",
			change:   func(tp *Topology) { tp.Prefix = strings.Repeat("p", 248) },
			wantErrs: []string{`is 252 characters long; Kafka allows 249`},
		},
		{
			scenario: "A prefix with a slash is rejected.",
			change:   func(tp *Topology) { tp.Prefix = "a/b." },
			wantErrs: []string{`prefix "a/b."`},
		},
		{
			scenario: "Zero partitions and a zero replication factor are both reported.",
			change:   func(tp *Topology) { tp.Topics[4].Partitions = 0; tp.Topics[4].ReplicationFactor = 0 },
			wantErrs: []string{`topic "out": partitions must be positive, got 0`, `topic "out": replication factor must be positive, got 0`},
		},
		{
			scenario: "A min.insync.replicas above the replication factor is rejected, because no write could ever succeed.",
			change:   func(tp *Topology) { tp.Topics[4].MinInsyncReplicas = 2 },
			wantErrs: []string{`topic "out": min.insync.replicas must be between 0 (broker default) and the replication factor 1, got 2`},
		},
		{
			scenario: "An unknown cleanup policy is rejected.",
			change:   func(tp *Topology) { tp.Topics[4].Cleanup = "archive" },
			wantErrs: []string{`topic "out": unknown cleanup policy "archive"`},
		},
		{
			scenario: "A deleting topic without a retention is rejected.",
			change:   func(tp *Topology) { tp.Topics[4].Retention = 0 },
			wantErrs: []string{`topic "out": cleanup policy "delete" deletes old records, so it needs a retention`},
		},
		{
			scenario: "A compact-only topic with a retention is rejected, because Kafka would ignore it.",
			change:   func(tp *Topology) { tp.Topics[2].Retention = time.Hour },
			wantErrs: []string{`topic "table": retention 1h0m0s has no effect on a compact-only topic`},
		},
		{
			scenario: "A compacted topic without a key is rejected.",
			change:   func(tp *Topology) { tp.Topics[2].Key = "" },
			wantErrs: []string{`topic "table": a compacted topic needs a key`},
		},
		{
			scenario: "A role that reads a topic that is not declared is rejected.",
			change:   func(tp *Topology) { tp.Roles[1].Reads = append(tp.Roles[1].Reads, "in.c") },
			wantErrs: []string{`role "worker": reads topic "in.c", which is not declared`},
		},
		{
			scenario: "A role that writes a topic that is not declared is rejected.",
			change:   func(tp *Topology) { tp.Roles[0].Writes = append(tp.Roles[0].Writes, "in.c") },
			wantErrs: []string{`role "producer": writes topic "in.c", which is not declared`},
		},
		{
			scenario: "A role that reads two topics with different partition counts is rejected, because their keys would land on different members.",
			change:   func(tp *Topology) { tp.Topics[1].Partitions = 8 },
			wantErrs: []string{`role "worker": reads topic "in.b" with 8 partitions, but topic "in.a" has 4; topics of one role must be co-partitioned`},
		},
		{
			scenario: "A changelog with other partitions than the role's inputs is rejected, because state would not sit next to its keys.",
			change:   func(tp *Topology) { tp.Topics[3].Partitions = 1 },
			wantErrs: []string{`role "worker": keeps its state in topic "state" with 1 partition, but topic "in.a" has 4`},
		},
		{
			scenario: "A changelog that deletes old records is rejected, because state would be lost.",
			change: func(tp *Topology) {
				tp.Topics[3].Cleanup = CleanupCompactDelete
				tp.Topics[3].Retention = time.Hour
			},
			wantErrs: []string{`role "worker": changelog "state" must be compact-only`},
		},
		{
			scenario: "A global table that is not compacted is rejected.",
			change:   func(tp *Topology) { tp.Roles[1].Tables = []Topic{"out"} },
			wantErrs: []string{`role "worker": looks up topic "out" as a global table, but its cleanup policy "delete" does not compact`},
		},
		{
			scenario: "A role that writes its own input stream is rejected as a loop.",
			change:   func(tp *Topology) { tp.Roles[1].Writes = append(tp.Roles[1].Writes, "in.a") },
			wantErrs: []string{`role "worker": writes topic "in.a", which it reads: a loop`},
		},
		{
			scenario: "A role that reads one topic both as a stream and as a table is rejected.",
			change:   func(tp *Topology) { tp.Roles[1].Tables = append(tp.Roles[1].Tables, "in.a") },
			wantErrs: []string{`role "worker": looks up topic "in.a", which it already reads`},
		},
		{
			scenario: "A role that looks up a table it also writes is valid, like the embeddings model.",
			change: func(tp *Topology) {
				tp.Roles[1].Writes = append(tp.Roles[1].Writes, "table")
			},
		},
		{
			scenario: "Two roles sharing a consumer group are rejected, because they would split its partitions.",
			change: func(tp *Topology) {
				tp.Roles = append(tp.Roles, RoleSpec{Name: "other", Group: "g", Reads: []Topic{"in.a"}})
			},
			wantErrs: []string{`role "other": group "g" is already the group of role "worker"`},
		},
		{
			scenario: "A role declared twice is rejected.",
			change:   func(tp *Topology) { tp.Roles = append(tp.Roles, RoleSpec{Name: "producer", Writes: []Topic{"in.a"}}) },
			wantErrs: []string{`role "producer": declared twice`},
		},
		{
			scenario: "A role without a consumer group that reads a topic is rejected, because it could not commit offsets.",
			change:   func(tp *Topology) { tp.Roles[1].Group = "" },
			wantErrs: []string{`role "worker": reads topics but has no consumer group`},
		},
		{
			scenario: "A consuming role that reads nothing is rejected.",
			change: func(tp *Topology) {
				tp.Roles = append(tp.Roles, RoleSpec{Name: "idle", Group: "idle", Writes: []Topic{"out"}})
			},
			wantErrs: []string{`role "idle": has consumer group "idle" but reads no topic`},
		},
		{
			scenario: "A topic that is read but written by no role is rejected.",
			change:   func(tp *Topology) { tp.Roles[0].Writes = []Topic{"in.a", "table"} },
			wantErrs: []string{`role "worker": reads topic "in.b", which no role writes`},
		},
		{
			scenario: "A topic that no role uses is rejected.",
			change: func(tp *Topology) {
				tp.Topics = append(tp.Topics, TopicSpec{Name: "orphan", Partitions: 1, ReplicationFactor: 1, Cleanup: CleanupDelete, Retention: time.Hour})
			},
			wantErrs: []string{`topic "orphan": declared, but no role reads or writes it`},
		},
		{
			scenario: "A sink listed twice is rejected.",
			change:   func(tp *Topology) { tp.Roles[1].Sinks = []string{"db", "db"} },
			wantErrs: []string{`role "worker": has sink "db" twice`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			tp := base()
			tt.change(&tp)
			err := tp.Validate()
			if len(tt.wantErrs) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want errors containing %q", tt.wantErrs)
			}
			for _, want := range tt.wantErrs {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Validate() = %v\nwant an error containing %q", err, want)
				}
			}
		})
	}
}
