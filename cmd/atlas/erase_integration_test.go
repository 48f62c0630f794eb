//go:build integration

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/segmentio/kafka-go"

	"github.com/atlas-stream/atlas/consumers/aggregates"
	"github.com/atlas-stream/atlas/consumers/aggregates/chsink"
	"github.com/atlas-stream/atlas/consumers/anomaly/alertsink"
	"github.com/atlas-stream/atlas/consumers/embeddings"
	"github.com/atlas-stream/atlas/consumers/embeddings/api"
	"github.com/atlas-stream/atlas/consumers/embeddings/changelog"
	"github.com/atlas-stream/atlas/consumers/enginetest"
	"github.com/atlas-stream/atlas/internal/erasure"
	"github.com/atlas-stream/atlas/internal/kafkaconn"
	"github.com/atlas-stream/atlas/producers/player"
	"github.com/atlas-stream/atlas/schemas"
	"github.com/atlas-stream/atlas/schemas/warehouse"
	"github.com/atlas-stream/atlas/topology"
)

const (
	eraseGone = "pro-erase-gone"
	eraseKept = "pro-erase-kept"
)

func eraseEnv(t *testing.T, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("the erase-profile integration test needs %s: run scripts/kafka.sh start; scripts/clickhouse.sh start, then eval \"$(scripts/kafka.sh env)\"; eval \"$(scripts/clickhouse.sh env)\"", name)
	}
	return v
}

// eraseMember is an embeddings member on the real broker: its Node, the
// model follower running, and its API on a local port.
type eraseMember struct {
	node  *embeddings.Node
	store *changelog.Store
	api   *httptest.Server
}

func newEraseMember(t *testing.T, kc kafkaconn.Config, topo topology.Topology) *eraseMember {
	t.Helper()
	store, err := changelog.New(changelog.Config{Kafka: kc, StateTopic: topo.Name(topology.EmbeddingsState), ModelTopic: topo.Name(topology.EmbeddingsModel)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	node, err := embeddings.NewNode(embeddings.NodeConfig{Learner: embeddings.Config{Dim: 8}, Store: store,
		PlaybackTopic: topo.Name(topology.Playback), BrowseTopic: topo.Name(topology.Browse), FlushEvery: time.Nanosecond, Advertise: addr})
	if err != nil {
		t.Fatal(err)
	}
	store.Model.Apply = node.ApplyModel
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); store.Model.Run(ctx) }()
	h, err := api.Handler(api.Config{Node: node, Self: addr, PartitionOf: func(id string) int { return player.Partition(id, 2) }})
	if err != nil {
		t.Fatal(err)
	}
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: h}}
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		cancel()
		<-done
		store.Close()
	})
	return &eraseMember{node: node, store: store, api: srv}
}

func (m *eraseMember) recommendations(t *testing.T, id string) (int, api.Recommendations) {
	t.Helper()
	res, err := http.Get(m.api.URL + "/v1/profiles/" + id + "/recommendations?k=3")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var r api.Recommendations
	if err := json.NewDecoder(res.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, r
}

func count(t *testing.T, conn driver.Conn, query string, args ...any) uint64 {
	t.Helper()
	var n uint64
	if err := conn.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// atlas erase-profile against the real broker and server: a profile's
// late events, its mentions in alert evidence, its hash among distinct
// viewers, its account's alerts, its state in the changelog and its
// recommendations are gone, and another profile's are all intact.
func TestEraseProfileRemovesRowsStateAndRecommendationsAndKeepsOtherProfiles(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Topics of the test's own.
	kc := kafkaconn.Config{Brokers: kafkaconn.ParseBrokers(eraseEnv(t, "ATLAS_KAFKA_BROKERS"))}
	var rnd [4]byte
	rand.Read(rnd[:])
	prefix := "test-erase-" + hex.EncodeToString(rnd[:]) + "."
	topo := topology.Default(topology.Options{Prefix: prefix, Partitions: 2})
	client, err := kc.Client()
	if err != nil {
		t.Fatal(err)
	}
	client.Timeout = 30 * time.Second
	if _, err := topology.Apply(ctx, client, topo); err != nil {
		t.Fatalf("cannot create the test topics: %v", err)
	}
	t.Cleanup(func() {
		var names []string
		for _, s := range topo.Topics {
			names = append(names, topo.Name(s.Name))
		}
		client.DeleteTopics(context.Background(), &kafka.DeleteTopicsRequest{Topics: names})
	})

	// A database of the test's own.
	chAddr := eraseEnv(t, "ATLAS_CLICKHOUSE_ADDR")
	adminUser, adminPass := eraseEnv(t, "ATLAS_CLICKHOUSE_ADMIN_USER"), eraseEnv(t, "ATLAS_CLICKHOUSE_ADMIN_PASSWORD")
	admin, err := warehouse.Open(ctx, warehouse.Config{Addr: chAddr, Database: "default", User: adminUser, Password: adminPass})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	db := fmt.Sprintf("atlas_cmd_erase_%d", time.Now().UnixNano())
	t.Cleanup(func() {
		if err := admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db); err != nil {
			t.Errorf("cannot drop %s: %v", db, err)
		}
	})
	if _, err := warehouse.Migrate(ctx, admin, db, nil); err != nil {
		t.Fatal(err)
	}
	conn, err := warehouse.Open(ctx, warehouse.Config{Addr: chAddr, Database: db, User: adminUser, Password: adminPass})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })

	// Aggregates rows through the real processor and sink: both profiles
	// play a title in one minute (one row, two viewer hashes), and each
	// sends an event after the minute closed (a late_events row each).
	sink, err := chsink.New(conn, chsink.Config{})
	if err != nil {
		t.Fatal(err)
	}
	sinkCtx, stopSink := context.WithCancel(ctx)
	sinkDone := make(chan error, 1)
	go func() { sinkDone <- sink.Run(sinkCtx) }()
	base := time.Date(2026, 3, 14, 10, 0, 0, 0, time.UTC).UnixMilli()
	seq := 0
	play := func(profile, account string, t int64, kind schemas.PlaybackKind, title string) *schemas.Playback {
		seq++
		return &schemas.Playback{Envelope: schemas.Envelope{EventID: fmt.Sprintf("ev-%d", seq), EventTime: t, ReceiveTime: t,
			AccountID: account, ProfileID: profile, DeviceID: "dev-" + profile, SessionID: "ses-" + profile, Country: "DE",
			DeviceType: schemas.DeviceTV}, Kind: kind, TitleID: title, DurationMs: 3_600_000, CDN: "cdn-a", ISP: "isp-b"}
	}
	factory, err := aggregates.NewFactory(aggregates.Config{Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	agg := enginetest.New(factory)
	pbTopic := topo.Name(topology.Playback)
	if err := agg.Feed(pbTopic, 0,
		play(eraseGone, "acc-gone", base+10_000, schemas.PlayStart, "x1"),
		play(eraseKept, "acc-kept", base+20_000, schemas.PlayStart, "x1"),
		play("pro-other", "acc-other", base+130_000, schemas.PlayStart, "x2"),
		play(eraseGone, "acc-gone", base+30_000, schemas.PlayHeartbeat, "x1"),
		play(eraseKept, "acc-kept", base+40_000, schemas.PlayHeartbeat, "x1"),
	); err != nil {
		t.Fatal(err)
	}
	if _, err := agg.Checkpoint(pbTopic, 0); err != nil {
		t.Fatal(err)
	}
	stopSink()
	if err := <-sinkDone; err != nil {
		t.Fatal(err)
	}

	// Alerts through the real sink: a bot alert about each account whose
	// evidence names the profile, and a sharing alert about each account.
	alert := func(kind, account, profile string) schemas.Alert {
		ev := map[string]string{"rate_per_s": "4.00"}
		if profile != "" {
			ev["profile"] = profile
		}
		return schemas.Alert{ID: kind + "-" + account, Kind: kind, Status: schemas.AlertFiring, Severity: schemas.SeverityHigh,
			Subject: "account:" + account, Score: 4, Evidence: ev, WindowStart: base, WindowEnd: base + 60_000, FirstSeen: base, DetectedAt: base + 60_000}
	}
	if err := alertsink.Insert(ctx, conn, []schemas.Alert{
		alert("bot", "acc-gone", eraseGone), alert("account_sharing", "acc-gone", ""),
		alert("bot", "acc-kept", eraseKept), alert("account_sharing", "acc-kept", ""),
		// The erased profile's id in another account's alert (a profile
		// shared across accounts, say) is redacted, the alert kept.
		alert("bot", "acc-other", eraseGone),
	}); err != nil {
		t.Fatal(err)
	}

	// Embeddings state: a member learns from both profiles and a few
	// others, writes their state to the changelog and serves their
	// recommendations.
	m := newEraseMember(t, kc, topo)
	emb := enginetest.New(m.node.Factory)
	logs := map[int][]schemas.Record{}
	for _, s := range []string{"gone:x1", "gone:x2", "kept:x1", "kept:x2", "u1:x1", "u1:x2", "u1:x3", "u2:x2", "u2:x3", "u3:x1", "u3:x3"} {
		who, title, _ := strings.Cut(s, ":")
		profile := "pro-erase-" + who
		p := player.Partition(profile, 2)
		logs[p] = append(logs[p], play(profile, "acc-"+who, base, schemas.PlayStart, title))
	}
	for p := range 2 {
		if err := emb.Feed(pbTopic, p, logs[p]...); err != nil {
			t.Fatal(err)
		}
		if _, err := emb.Checkpoint(pbTopic, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.store.SyncModel(ctx); err != nil {
		t.Fatal(err)
	}
	m.node.Refresh()
	for _, id := range []string{eraseGone, eraseKept} {
		if status, r := m.recommendations(t, id); status != 200 || r.ColdStart || len(r.Recommendations) == 0 {
			t.Fatalf("before: recommendations of %s: %d %+v", id, status, r)
		}
	}

	hashGone, hashKept := erasure.ProfileHash(eraseGone), erasure.ProfileHash(eraseKept)
	before := func(what string, got uint64) {
		t.Helper()
		if got == 0 {
			t.Fatalf("before: no %s to erase: the seeding is broken", what)
		}
	}
	before("late event", count(t, conn, "SELECT count() FROM late_events WHERE profile_id = ?", eraseGone))
	before("viewer hash (aggregates and erasure must hash alike)", count(t, conn, "SELECT count() FROM playback_minute FINAL WHERE has(viewer_hashes, ?)", hashGone))

	// Run the command as an operator would.
	code := run(ctx, []string{"erase-profile", eraseGone, "--account", "acc-gone",
		"--topic-prefix", prefix, "--clickhouse-database", db, "--embeddings-api", strings.TrimPrefix(m.api.URL, "http://")})
	if code != exitOK {
		t.Fatalf("atlas erase-profile exited %d", code)
	}

	// ClickHouse: the erased profile's rows and mentions are gone, the
	// other's are intact.
	checks := []struct {
		what       string
		query      string
		gone, kept uint64 // rows for the erased profile after, rows for the kept one
	}{
		{"late events", "SELECT count() FROM late_events FINAL WHERE profile_id = ?", 0, 1},
		{"alerts naming the profile", "SELECT count() FROM alerts FINAL WHERE position(evidence, ?) > 0", 0, 1},
		{"alerts about the account", "SELECT count() FROM alerts FINAL WHERE subject = ?", 0, 2},
		{"minutes with the profile among the viewers", "SELECT count() FROM playback_minute FINAL WHERE has(viewer_hashes, ?)", 0, 1},
	}
	for _, c := range checks {
		arg := func(profile string) any {
			switch {
			case strings.Contains(c.query, "evidence"):
				return `"profile":"` + profile + `"`
			case strings.Contains(c.query, "subject"):
				return "account:acc-" + strings.TrimPrefix(profile, "pro-erase-")
			case strings.Contains(c.query, "viewer_hashes"):
				return erasure.ProfileHash(profile)
			}
			return profile
		}
		gone, kept := count(t, conn, c.query, arg(eraseGone)), count(t, conn, c.query, arg(eraseKept))
		t.Logf("%-45s erased profile: %d rows, kept profile: %d rows", c.what, gone, kept)
		if gone != c.gone || kept != c.kept {
			t.Errorf("%s: %d rows for the erased profile and %d for the kept one; want %d and %d", c.what, gone, kept, c.gone, c.kept)
		}
	}
	if n := count(t, conn, "SELECT count() FROM alerts FINAL WHERE subject = 'account:acc-other' AND position(evidence, '(erased)') > 0"); n != 1 {
		t.Errorf("the other account's alert that named the profile: %d redacted rows, want 1", n)
	}
	if n := count(t, conn, "SELECT count() FROM playback_minute FINAL WHERE viewers != length(viewer_hashes)"); n != 0 {
		t.Errorf("%d rows whose viewers no longer match their hashes", n)
	}
	if n := count(t, conn, "SELECT count() FROM playback_minute FINAL WHERE has(viewer_hashes, ?) AND viewers = 1 AND starts = 2", hashKept); n != 1 {
		t.Errorf("the shared minute: %d rows with the kept viewer alone and both starts, want 1", n)
	}

	// Recommendations: cold start for the erased profile, as before for
	// the other.
	if status, r := m.recommendations(t, eraseGone); status != 404 || !r.ColdStart {
		t.Errorf("after: recommendations of the erased profile: %d %+v", status, r)
	}
	if status, r := m.recommendations(t, eraseKept); status != 200 || r.ColdStart {
		t.Errorf("after: recommendations of the kept profile: %d %+v", status, r)
	}

	// The changelog: the erased profile's last record is a tombstone read
	// back from the topic, and a member that restores from it has only the
	// other profile.
	dialer, err := kc.Dialer()
	if err != nil {
		t.Fatal(err)
	}
	last := map[string][]byte{}
	records := map[string]int{}
	for p := range 2 {
		err := changelog.ReadPartition(ctx, dialer, kc.BrokerList()[0], topo.Name(topology.EmbeddingsState), p, func(k, v []byte) error {
			last[string(k)] = v
			records[string(k)]++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if v, ok := last[eraseGone]; !ok || v != nil {
		t.Errorf("the erased profile's last changelog record: present %v, value %d bytes; want a tombstone", ok, len(v))
	}
	if v := last[eraseKept]; len(v) == 0 {
		t.Errorf("the kept profile's state is not the last record of its key")
	}
	t.Logf("changelog: %d records for the erased profile (the last a tombstone), %d for the kept one", records[eraseGone], records[eraseKept])
	next := newEraseMember(t, kc, topo)
	restore := enginetest.New(next.node.Factory)
	for p := range 2 {
		if _, err := restore.Checkpoint(pbTopic, p); err != nil {
			t.Fatal(err)
		}
	}
	if _, found, owned := next.node.Lookup(player.Partition(eraseGone, 2), eraseGone); !owned || found {
		t.Errorf("a member restored from the changelog has the erased profile (owned %v, found %v)", owned, found)
	}
	if _, found, _ := next.node.Lookup(player.Partition(eraseKept, 2), eraseKept); !found {
		t.Errorf("a member restored from the changelog lost the kept profile")
	}
}
