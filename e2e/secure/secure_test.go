//go:build integration

// Package secure tests Atlas against a Kafka broker that only speaks
// SASL/SCRAM-SHA-512 over TLS: the second broker that `scripts/kafka.sh
// --secure start` runs beside the plain one, with its own CA, certificate
// and random passwords. TestMain builds the atlas binary and starts (or
// reuses) that broker, so
//
//	go test -tags integration -count=1 -v ./e2e/secure/
//
// needs only the ClickHouse variables of `scripts/clickhouse.sh env` (make
// test exports them). The tests fail, never skip, when a service is
// missing.
//
// What they show: the roles run end to end through the secured broker and
// produce exactly the simulator's ground truth; a wrong password, an unknown
// user, a client without TLS or without SASL, a client that does not trust
// the CA and an unoffered mechanism are all refused, each with an error that
// says why; no port of the broker answers plaintext; and the broker's and
// ClickHouse's secrets are in files of mode 600 only.
package secure

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/atlas-stream/atlas/consumers/engine"
	"github.com/atlas-stream/atlas/internal/kafkaconn"
	"github.com/atlas-stream/atlas/producers/sim"
	"github.com/atlas-stream/atlas/schemas/warehouse"
	"github.com/atlas-stream/atlas/topology"
)

var (
	// root is the checkout; atlasBin the binary built from it.
	root, atlasBin string
	// secureEnv holds what `scripts/kafka.sh --secure env` exports.
	secureEnv map[string]string
)

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	var err error
	if root, err = filepath.Abs("../.."); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	dir, err := os.MkdirTemp("", "atlas-secure-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	atlasBin = filepath.Join(dir, "atlas")
	build := exec.Command("go", "build", "-o", atlasBin, "./cmd/atlas")
	build.Dir, build.Stdout, build.Stderr = root, os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "cannot build the atlas binary:", err)
		return 1
	}

	script := filepath.Join(root, "scripts", "kafka.sh")
	start := exec.Command(script, "--secure", "start")
	start.Stdout, start.Stderr = os.Stderr, os.Stderr
	began := time.Now()
	if err := start.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "cannot start the secure Kafka broker with `scripts/kafka.sh --secure start`: %v\n", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "secure broker ready after %s\n", time.Since(began).Round(time.Millisecond))
	out, err := exec.Command(script, "--secure", "env").Output()
	if err != nil {
		fmt.Fprintf(os.Stderr, "cannot run `scripts/kafka.sh --secure env`: %v\n", err)
		return 1
	}
	if secureEnv, err = parseEnv(out); err != nil {
		fmt.Fprintf(os.Stderr, "cannot read `scripts/kafka.sh --secure env`: %v\n", err)
		return 1
	}
	return m.Run()
}

// parseEnv reads `export K=V` lines; `unset` lines are ignored, since
// clientEnv drops every ATLAS_KAFKA_* variable of the caller anyway.
func parseEnv(b []byte) (map[string]string, error) {
	env := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "unset ") {
			continue
		}
		k, v, ok := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		if !ok || strings.ContainsAny(v, `'"\$ `) {
			return nil, fmt.Errorf("unexpected line %q", line)
		}
		env[k] = v
	}
	for _, k := range []string{"ATLAS_KAFKA_BROKERS", "ATLAS_KAFKA_TLS", "ATLAS_KAFKA_CA_FILE", "ATLAS_KAFKA_SASL_MECHANISM",
		"ATLAS_KAFKA_SASL_USER", "ATLAS_KAFKA_SASL_PASSWORD_FILE"} {
		if env[k] == "" {
			return nil, fmt.Errorf("%s is missing", k)
		}
	}
	return env, nil
}

// clientEnv is the environment of an atlas process that uses the secure
// broker: the test's own without any ATLAS_KAFKA_* (those point at the
// plain broker), the secure broker's variables, then extra (the last value
// of a variable wins).
func clientEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ATLAS_KAFKA_") {
			env = append(env, kv)
		}
	}
	for k, v := range secureEnv {
		env = append(env, k+"="+v)
	}
	return append(env, extra...)
}

// kafkaConfig is how the test itself reaches the secure broker: through
// kafkaconn, as every role does.
func kafkaConfig() kafkaconn.Config {
	return kafkaconn.Config{
		Brokers: kafkaconn.ParseBrokers(secureEnv["ATLAS_KAFKA_BROKERS"]), TLS: true, CAFile: secureEnv["ATLAS_KAFKA_CA_FILE"],
		SASLMechanism: secureEnv["ATLAS_KAFKA_SASL_MECHANISM"], SASLUser: secureEnv["ATLAS_KAFKA_SASL_USER"],
		SASLPasswordFile: secureEnv["ATLAS_KAFKA_SASL_PASSWORD_FILE"],
	}
}

// secureDir is the secure broker's folder under $ATLAS_RUN_DIR (the CA
// file is in its tls/).
func secureDir() string { return filepath.Dir(filepath.Dir(secureEnv["ATLAS_KAFKA_CA_FILE"])) }

// atlas runs the binary to completion and returns its combined output and
// exit code.
func atlas(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, atlasBin, args...)
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &exit) && exit.Exited():
		return out.String(), exit.ExitCode()
	default:
		t.Fatalf("atlas %s: %v\n%s", strings.Join(args, " "), err, out.String())
		return "", -1
	}
}

// mustAtlas is atlas that fails the test unless the command succeeds.
func mustAtlas(t *testing.T, env []string, args ...string) string {
	t.Helper()
	out, code := atlas(t, env, args...)
	if code != 0 {
		t.Fatalf("atlas %s: exit code %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

func randomID() string {
	var b [4]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func clickhouseConfig(t *testing.T, who, database string) warehouse.Config {
	t.Helper()
	prefix := map[string]string{"admin": "ATLAS_CLICKHOUSE_ADMIN_", "writer": "ATLAS_CLICKHOUSE_", "reader": "ATLAS_CLICKHOUSE_READER_"}[who]
	c := warehouse.Config{Addr: os.Getenv("ATLAS_CLICKHOUSE_ADDR"), Database: database,
		User: os.Getenv(prefix + "USER"), Password: os.Getenv(prefix + "PASSWORD")}
	if c.Addr == "" || c.User == "" || c.Password == "" {
		t.Fatalf("ATLAS_CLICKHOUSE_ADDR, %sUSER and %sPASSWORD must be set: run scripts/clickhouse.sh start and eval \"$(scripts/clickhouse.sh env)\" (make test does)", prefix, prefix)
	}
	return c
}

func TestAtlasRunsEndToEndOverSCRAMAndTLS(t *testing.T) {
	clickhouseConfig(t, "admin", "default")
	id := randomID()
	prefix, database := "secure-"+id+".", "secure_"+id
	topo := topology.Default(topology.Options{Prefix: prefix})
	env := clientEnv("ATLAS_TOPIC_PREFIX="+prefix, "ATLAS_CLICKHOUSE_DATABASE="+database)
	t.Cleanup(func() { cleanup(t, topo, database) })

	began := time.Now()
	out := mustAtlas(t, env, "topology", "apply")
	t.Logf("atlas topology apply over SASL_SSL:\n%s", strings.TrimSpace(out))
	mustAtlas(t, env, "clickhouse", "migrate")
	// doctor's Kafka connection checks pass over SASL/TLS. (Its other
	// checks judge groups and ClickHouse, which are not this test's
	// subject, so its exit code is not.)
	out, _ = atlas(t, env, "doctor")
	for _, check := range []string{"kafka brokers", "kafka topics"} {
		line := errorLine(out, check)
		if !strings.HasPrefix(line, "ok ") {
			t.Fatalf("atlas doctor: the %q check did not pass over SASL/TLS:\n%s", check, out)
		}
		t.Logf("atlas doctor: %s", line)
	}

	truthPath := filepath.Join(t.TempDir(), "truth.json")
	const events = 30_000
	out = mustAtlas(t, env, "simulate", "--seed", "9", "--events", fmt.Sprint(events), "--truth", truthPath)
	t.Logf("atlas simulate:\n%s", lastLines(out, 3))

	// Every role in one process: the engine's consumer groups, the
	// aggregates sink, the embeddings changelog and model topics, the
	// anomaly alert writers, all through the secure broker.
	ops := freeAddr(t)
	env = append(env, "ATLAS_EMBEDDINGS_ADDR="+freeAddr(t))
	all, done, output := start(t, env, "run", "all", "--ops-addr", ops, "--flush-interval", "300ms")
	phase := time.Now()

	inputs := []string{topo.Name(topology.Playback), topo.Name(topology.Browse), topo.Name(topology.Catalog)}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ok, why := true, ""
		for _, g := range []topology.Group{topology.AggregatesGroup, topology.EmbeddingsGroup, topology.AnomalyGroup} {
			if ok, why = drained(topo.GroupID(g), inputs[:2]...); !ok {
				why = string(g) + ": " + why
				break
			}
		}
		if ok {
			break
		}
		select {
		case err := <-done:
			done <- err
			t.Fatalf("atlas run all exited (%v) before it processed everything (%s):\n%s", err, why, output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("atlas run all has not processed everything after 2m: %s\n%s", why, output())
		}
		time.Sleep(300 * time.Millisecond)
	}
	if !ready(ops) {
		t.Fatalf("/readyz of atlas run all does not answer 200 after it processed everything:\n%s", output())
	}
	profiles := metric(ops, "atlas_embeddings_profiles")
	stop(t, all, done, output)
	t.Logf("atlas run all processed everything and stopped on SIGTERM in %s", time.Since(phase).Round(100*time.Millisecond))
	phase = time.Now()

	// Restored over SASL/TLS: a new embeddings member reads the state
	// changelog back and holds the same profiles.
	ops2 := freeAddr(t)
	emb, done2, output2 := start(t, env, "run", "embeddings", "--ops-addr", ops2)
	deadline = time.Now().Add(time.Minute)
	for !ready(ops2) || metric(ops2, "atlas_embeddings_profiles") < profiles {
		if time.Now().After(deadline) {
			t.Fatalf("a restarted embeddings member holds %v profiles after 1m, want %v:\n%s", metric(ops2, "atlas_embeddings_profiles"), profiles, output2())
		}
		time.Sleep(200 * time.Millisecond)
	}
	stop(t, emb, done2, output2)
	t.Logf("a new embeddings member restored %v profiles and stopped in %s", profiles, time.Since(phase).Round(100*time.Millisecond))
	if profiles < 1 {
		t.Fatalf("the embeddings role holds %v profiles, want some", profiles)
	}

	out = mustAtlas(t, env, "alerts", "tail", "--from", "beginning", "--follow=false", "--json")
	alerts := strings.Count(out, "\n")
	if records := endOffsets(t, topo.Name(topology.Alerts)); alerts == 0 && records > 0 || alerts > 0 && records == 0 {
		t.Fatalf("atlas alerts tail printed %d alerts from a topic of %d records:\n%s", alerts, records, out)
	}

	truth, err := sim.LoadTruth(truthPath)
	if err != nil {
		t.Fatal(err)
	}
	records := endOffsets(t, inputs...)
	if want := truth.Totals.Sent + truth.Totals.Catalog; records != want {
		t.Fatalf("the secure broker holds %d records in %v, the simulator sent %d (%d events and %d titles)",
			records, inputs, want, truth.Totals.Sent, truth.Totals.Catalog)
	}
	n, diffs := diffWithTruth(t, clickhouseConfig(t, "reader", database), truth)
	if len(diffs) > 0 {
		t.Fatalf("%d differences from the ground truth (%d rows and late events compared); first ones:\n%s",
			len(diffs), n, strings.Join(diffs[:min(len(diffs), 15)], "\n"))
	}
	t.Logf("through SASL/SCRAM-SHA-512 over TLS: %d records on the broker as sent (%d events, %d duplicates, %d late); "+
		"all %d aggregate rows and late events in ClickHouse equal the ground truth; %v profiles learned and restored "+
		"from the changelog by a new member; %d alerts read back with atlas alerts tail; %s in all",
		records, truth.Totals.Sent, truth.Totals.Duplicates, truth.Totals.Late, n, profiles, alerts, time.Since(began).Round(100*time.Millisecond))
}

// start runs atlas in the background with its output in a file; the
// process is killed when the test ends. done delivers its exit once (and
// is refilled by whoever reads it); output returns its last lines.
func start(t *testing.T, env []string, args ...string) (*exec.Cmd, chan error, func() string) {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), strings.Join(args[:min(2, len(args))], "-")+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(atlasBin, args...)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait(); logFile.Close() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	return cmd, done, func() string { b, _ := os.ReadFile(logPath); return lastLines(string(b), 30) }
}

// stop sends SIGTERM and fails the test unless the process exits 0 within
// 30 s.
func stop(t *testing.T, cmd *exec.Cmd, done chan error, output func() string) {
	t.Helper()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		done <- err
		if err != nil {
			t.Fatalf("%s did not stop cleanly on SIGTERM: %v\n%s", strings.Join(cmd.Args, " "), err, output())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("%s still runs 30 s after SIGTERM:\n%s", strings.Join(cmd.Args, " "), output())
	}
}

// cleanup deletes the test's topics and database unless it failed.
func cleanup(t *testing.T, topo topology.Topology, database string) {
	if t.Failed() {
		t.Logf("keeping database %s and topics %s* on the secure broker for inspection", database, topo.Prefix)
		return
	}
	if client, err := kafkaConfig().Client(); err == nil {
		var names []string
		for _, ts := range topo.Topics {
			names = append(names, topo.Name(ts.Name))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = client.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: names})
	}
	if conn, err := warehouse.Open(context.Background(), clickhouseConfig(t, "admin", "default")); err == nil {
		_ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+database)
		conn.Close()
	}
}

// drained reports whether the group has processed every record of topics,
// from the processed offset the engine records in each commit's metadata
// (the committed offset itself can be lower: open windows restart from
// their first record).
func drained(group string, topics ...string) (bool, string) {
	client, err := kafkaConfig().Client()
	if err != nil {
		return false, err.Error()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return false, err.Error()
	}
	ends := map[string][]kafka.OffsetRequest{}
	fetch := map[string][]int{}
	for _, tp := range md.Topics {
		for _, p := range tp.Partitions {
			ends[tp.Name] = append(ends[tp.Name], kafka.LastOffsetOf(p.ID))
			fetch[tp.Name] = append(fetch[tp.Name], p.ID)
		}
	}
	lo, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: ends})
	if err != nil {
		return false, err.Error()
	}
	commits, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: fetch})
	if err != nil {
		return false, err.Error()
	}
	processed := map[string]int64{}
	for topic, ps := range commits.Topics {
		for _, p := range ps {
			processed[fmt.Sprint(topic, "/", p.Partition)] = engine.ProcessedOffset(p.Metadata)
		}
	}
	for topic, ps := range lo.Topics {
		for _, p := range ps {
			k := fmt.Sprint(topic, "/", p.Partition)
			if p.LastOffset > 0 && processed[k] < p.LastOffset {
				return false, fmt.Sprintf("%s processed up to %d of %d", k, processed[k], p.LastOffset)
			}
		}
	}
	return true, ""
}

// endOffsets sums the end offsets of every partition of topics.
func endOffsets(t *testing.T, topics ...string) int64 {
	t.Helper()
	client, err := kafkaConfig().Client()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		t.Fatal(err)
	}
	req := map[string][]kafka.OffsetRequest{}
	for _, tp := range md.Topics {
		for _, p := range tp.Partitions {
			req[tp.Name] = append(req[tp.Name], kafka.LastOffsetOf(p.ID))
		}
	}
	lo, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: req})
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, ps := range lo.Topics {
		for _, p := range ps {
			if p.Error != nil {
				t.Fatalf("ListOffsets %d: %v", p.Partition, p.Error)
			}
			n += p.LastOffset
		}
	}
	return n
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func ready(addr string) bool {
	c := http.Client{Timeout: 2 * time.Second}
	res, err := c.Get("http://" + addr + "/readyz")
	if err != nil {
		return false
	}
	res.Body.Close()
	return res.StatusCode == http.StatusOK
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// metric sums the samples of a metric family on a process's /metrics; -1
// when the endpoint does not answer.
func metric(addr, name string) float64 {
	c := http.Client{Timeout: 2 * time.Second}
	res, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return -1
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	sum := 0.0
	for _, line := range strings.Split(string(body), "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			sum += v
		}
	}
	return sum
}
