package topology

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/segmentio/kafka-go"
)

func TestTopicConfig(t *testing.T) {
	check := func(s TopicSpec, want []kafka.ConfigEntry) {
		t.Helper()
		got := topicConfig("x."+string(s.Name), s)
		if got.Topic != "x."+string(s.Name) || got.NumPartitions != s.Partitions || got.ReplicationFactor != s.ReplicationFactor {
			t.Errorf("topicConfig(%q) = %+v, want name, partitions and rf of the spec", s.Name, got)
		}
		if diff := cmp.Diff(want, got.ConfigEntries); diff != "" {
			t.Errorf("topicConfig(%q) configs (-want +got):\n%s", s.Name, diff)
		}
	}
	dev := Default(Options{})
	prod := Default(Options{ReplicationFactor: 3})
	playback, _ := dev.Topic(Playback)
	catalog, _ := dev.Topic(Catalog)
	alerts, _ := prod.Topic(Alerts)
	state, _ := prod.Topic(EmbeddingsState)
	check(playback, []kafka.ConfigEntry{{ConfigName: "cleanup.policy", ConfigValue: "delete"}, {ConfigName: "retention.ms", ConfigValue: "604800000"}})
	check(catalog, []kafka.ConfigEntry{{ConfigName: "cleanup.policy", ConfigValue: "compact"}})
	check(alerts, []kafka.ConfigEntry{{ConfigName: "cleanup.policy", ConfigValue: "delete"}, {ConfigName: "retention.ms", ConfigValue: "2592000000"}, {ConfigName: "min.insync.replicas", ConfigValue: "2"}})
	check(state, []kafka.ConfigEntry{{ConfigName: "cleanup.policy", ConfigValue: "compact"}, {ConfigName: "min.insync.replicas", ConfigValue: "2"}})
}

func TestDiff(t *testing.T) {
	playback := TopicSpec{Name: Playback, Partitions: 6, ReplicationFactor: 1, Cleanup: CleanupDelete, Retention: 7 * 24 * time.Hour, Key: "profile id"}
	catalog := TopicSpec{Name: Catalog, Partitions: 1, ReplicationFactor: 3, MinInsyncReplicas: 2, Cleanup: CleanupCompact, Key: "title id"}
	asDeclared := observed{partitions: 6, replicationFactor: 1, configs: map[string]string{"cleanup.policy": "delete", "retention.ms": "604800000", "min.insync.replicas": "1"}}
	tests := []struct {
		scenario string
		spec     TopicSpec
		got      observed
		want     []string
	}{
		{
			scenario: "A topic as declared has no drift.",
			spec:     playback,
			got:      asDeclared,
		},
		{
			scenario: "A topic with partitions added by hand drifts in its partition count.",
			spec:     playback,
			got:      observed{partitions: 8, replicationFactor: 1, configs: asDeclared.configs},
			want:     []string{"partitions 6 declared, 8 on cluster"},
		},
		{
			scenario: "A topic with another retention and cleanup policy drifts in both, in people's units.",
			spec:     playback,
			got:      observed{partitions: 6, replicationFactor: 1, configs: map[string]string{"cleanup.policy": "compact", "retention.ms": "1209600000"}},
			want:     []string{"cleanup.policy delete declared, compact on cluster", "retention.ms 7d declared, 14d on cluster"},
		},
		{
			scenario: "A retention of -1 on the cluster is shown as forever.",
			spec:     playback,
			got:      observed{partitions: 6, replicationFactor: 1, configs: map[string]string{"cleanup.policy": "delete", "retention.ms": "-1"}},
			want:     []string{"retention.ms 7d declared, forever on cluster"},
		},
		{
			scenario: "The order of a combined cleanup policy does not matter.",
			spec:     TopicSpec{Name: "x", Partitions: 1, ReplicationFactor: 1, Cleanup: CleanupCompactDelete, Retention: time.Hour},
			got:      observed{partitions: 1, replicationFactor: 1, configs: map[string]string{"cleanup.policy": "delete,compact", "retention.ms": "3600000"}},
		},
		{
			scenario: "The retention of a compact-only topic is not compared, because Kafka does not apply it.",
			spec:     catalog,
			got:      observed{partitions: 1, replicationFactor: 3, configs: map[string]string{"cleanup.policy": "compact", "retention.ms": "604800000", "min.insync.replicas": "2"}},
		},
		{
			scenario: "A replicated topic drifts in replication factor and min.insync.replicas.",
			spec:     catalog,
			got:      observed{partitions: 1, replicationFactor: 1, configs: map[string]string{"cleanup.policy": "compact", "min.insync.replicas": "1"}},
			want:     []string{"replication factor 3 declared, 1 on cluster", "min.insync.replicas 2 declared, 1 on cluster"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			drift := diff("c."+string(tt.spec.Name), tt.spec, tt.got)
			var got []string
			for _, d := range drift {
				got = append(got, d.String())
				if d.Topic != "c."+string(tt.spec.Name) {
					t.Errorf("drift %q names topic %q, want the cluster name %q", d, d.Topic, "c."+string(tt.spec.Name))
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("diff (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReport(t *testing.T) {
	playback := TopicSpec{Name: Playback, Partitions: 6, ReplicationFactor: 1, Cleanup: CleanupDelete, Retention: 7 * 24 * time.Hour}
	drift := Drift{Topic: "atlas.browse.v1", Setting: "partitions", Declared: "6", Cluster: "8"}
	first := Report{Cluster: "abc", Topics: []TopicResult{
		{Topic: "atlas.playback.v1", Status: Created, Spec: playback},
		{Topic: "atlas.browse.v1", Status: Drifted, Drift: []Drift{drift}},
		{Topic: "atlas.dlq.v1", Status: OK},
	}}
	if !first.Changed() {
		t.Errorf("Changed() of a report with a created topic = false, want true")
	}
	if diff := cmp.Diff([]Drift{drift}, first.Drift()); diff != "" {
		t.Errorf("Drift() (-want +got):\n%s", diff)
	}
	lines := strings.Split(strings.TrimSuffix(first.String(), "\n"), "\n")
	want := []string{
		"cluster abc: 3 topics, 1 created, 1 ok, 1 drifted",
		"created  atlas.playback.v1 (6 partitions, rf 1, delete, retention 7d)",
		"drift    atlas.browse.v1: partitions 6 declared, 8 on cluster; left unchanged",
		"ok       atlas.dlq.v1",
	}
	if diff := cmp.Diff(want, lines); diff != "" {
		t.Errorf("String() (-want +got):\n%s", diff)
	}

	second := Report{Cluster: "abc", Topics: []TopicResult{{Topic: "atlas.playback.v1", Status: OK}}}
	if second.Changed() || len(second.Drift()) != 0 {
		t.Errorf("a report of topics as declared: Changed() = %v, Drift() = %v; want false, none", second.Changed(), second.Drift())
	}
	if !slices.Contains(strings.Split(second.String(), "\n"), "cluster abc: 1 topic, 0 created, 1 ok, 0 drifted, nothing changed") {
		t.Errorf("String() of an unchanged report = %q, want it to say nothing changed", second.String())
	}
}

func TestFormatRetention(t *testing.T) {
	check := func(d time.Duration, want string) {
		t.Helper()
		if got := formatRetention(d); got != want {
			t.Errorf("formatRetention(%v) = %q, want %q", d, got, want)
		}
	}
	check(0, "-")
	check(7*24*time.Hour, "7d")
	check(36*time.Hour, "36h")
	check(90*time.Minute, "90m")
	check(1500*time.Millisecond, "1.5s")
}
