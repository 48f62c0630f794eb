package topology

import (
	"errors"
	"strings"
	"testing"
)

func TestWriteTable(t *testing.T) {
	var b strings.Builder
	if err := WriteTable(&b, Default(Options{Prefix: "dev."})); err != nil {
		t.Fatalf("WriteTable: %v", err)
	}
	out := b.String()
	t.Logf("\n%s", out)
	lines := strings.Split(out, "\n")
	row := func(first string) []string {
		t.Helper()
		for _, l := range lines {
			if f := strings.Fields(l); len(f) > 0 && f[0] == first {
				return f
			}
		}
		t.Fatalf("WriteTable: no row starting with %q in\n%s", first, out)
		return nil
	}
	check := func(first string, want ...string) {
		t.Helper()
		got := strings.Join(row(first), " ")
		if w := strings.Join(want, " "); got != w {
			t.Errorf("WriteTable row %q = %q, want %q", first, got, w)
		}
	}
	check("TOPIC", "TOPIC", "PARTITIONS", "RF", "CLEANUP", "RETENTION", "KEY")
	check("dev.atlas.playback.v1", "dev.atlas.playback.v1", "6", "1", "delete", "7d", "profile", "id")
	check("dev.atlas.catalog.v1", "dev.atlas.catalog.v1", "1", "1", "compact", "-", "title", "id")
	check("dev.atlas.alerts.v1", "dev.atlas.alerts.v1", "3", "1", "delete", "30d", "subject")
	check("dev.atlas.dlq.v1", "dev.atlas.dlq.v1", "3", "1", "delete", "14d", "source", "key")
	check("ROLE", "ROLE", "GROUP", "READS", "TABLES", "STATE", "WRITES")
	check("ingest", "ingest", "-", "-", "-", "-", "dev.atlas.playback.v1,", "dev.atlas.browse.v1")
	check("aggregates", "aggregates", "dev.atlas-aggregates", "dev.atlas.playback.v1,", "dev.atlas.browse.v1",
		"dev.atlas.catalog.v1", "-", "dev.atlas.dlq.v1,", "clickhouse:aggregates")
	check("embeddings", "embeddings", "dev.atlas-embeddings", "dev.atlas.playback.v1,", "dev.atlas.browse.v1",
		"dev.atlas.catalog.v1,", "dev.atlas.embeddings.model.v1", "dev.atlas.embeddings.state.v1",
		"dev.atlas.embeddings.model.v1,", "dev.atlas.dlq.v1")
}

func TestWriteMermaid(t *testing.T) {
	var b strings.Builder
	if err := WriteMermaid(&b, Default(Options{})); err != nil {
		t.Fatalf("WriteMermaid: %v", err)
	}
	out := b.String()
	if !strings.HasPrefix(out, "flowchart LR\n") {
		t.Errorf("WriteMermaid output starts with %q, want %q", strings.SplitN(out, "\n", 2)[0], "flowchart LR")
	}
	has := func(line string) {
		t.Helper()
		for _, l := range strings.Split(out, "\n") {
			if strings.TrimSpace(l) == line {
				return
			}
		}
		t.Errorf("WriteMermaid has no line %q in\n%s", line, out)
	}
	// Nodes: producers, consuming roles with their group, topics, sinks.
	has(`r_ingest(["ingest"])`)
	has(`r_anomaly("anomaly<br/>group atlas-anomaly")`)
	has(`t_atlas_playback_v1[["atlas.playback.v1<br/>6 partitions, delete 7d"]]`)
	has(`t_atlas_catalog_v1[["atlas.catalog.v1<br/>1 partition, compact"]]`)
	has(`s_clickhouse_alerts[("clickhouse:alerts")]`)
	// Producers → topics.
	has(`r_ingest --> t_atlas_playback_v1`)
	has(`r_simulate --> t_atlas_browse_v1`)
	has(`r_catalog --> t_atlas_catalog_v1`)
	// Topics → roles, with global tables dotted.
	has(`t_atlas_playback_v1 --> r_aggregates`)
	has(`t_atlas_browse_v1 --> r_anomaly`)
	has(`t_atlas_catalog_v1 -. table .-> r_embeddings`)
	has(`t_atlas_embeddings_model_v1 -. table .-> r_embeddings`)
	// Roles → topics and sinks.
	has(`r_embeddings <-->|changelog| t_atlas_embeddings_state_v1`)
	has(`r_embeddings --> t_atlas_embeddings_model_v1`)
	has(`r_anomaly --> t_atlas_alerts_v1`)
	has(`r_anomaly --> t_atlas_dlq_v1`)
	has(`r_anomaly --> s_clickhouse_alerts`)
	has(`r_aggregates --> s_clickhouse_aggregates`)
	if strings.Contains(out, "r_ingest --> t_atlas_catalog_v1") {
		t.Errorf("WriteMermaid draws ingest writing the catalog, which it does not:\n%s", out)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriteReturnsWriteErrors(t *testing.T) {
	if err := WriteTable(failingWriter{}, Default(Options{})); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("WriteTable to a failing writer = %v, want the write error", err)
	}
	if err := WriteMermaid(failingWriter{}, Default(Options{})); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("WriteMermaid to a failing writer = %v, want the write error", err)
	}
}
