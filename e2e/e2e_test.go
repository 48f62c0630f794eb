//go:build integration

// Package e2e tests Atlas as its users run it: the atlas binary in separate
// processes against the real Kafka broker and ClickHouse server, killed with
// SIGKILL, stopped with SIGSTOP, rebalanced, and compared at the end with the
// ground truth that the simulator recorded. Equal, not approximately equal.
package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
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

	"github.com/atlas-stream/atlas/internal/kafkaconn"
	"github.com/atlas-stream/atlas/schemas/warehouse"
	"github.com/atlas-stream/atlas/topology"
)

var atlasBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "atlas-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	atlasBin = filepath.Join(dir, "atlas")
	build := exec.Command("go", "build", "-o", atlasBin, "../cmd/atlas")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "cannot build the atlas binary:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// stack is one test's isolated slice of the real services: its own topic
// prefix and ClickHouse database.
type stack struct {
	t        *testing.T
	dir      string
	prefix   string
	database string
	env      []string
	kafka    kafkaconn.Config
	topo     topology.Topology
}

func newStack(t *testing.T, partitions int) *stack {
	t.Helper()
	for _, v := range []string{"ATLAS_KAFKA_BROKERS", "ATLAS_CLICKHOUSE_ADDR", "ATLAS_CLICKHOUSE_ADMIN_PASSWORD"} {
		if os.Getenv(v) == "" {
			t.Fatalf("%s is not set: the end-to-end tests need the real services. Run scripts/kafka.sh start and scripts/clickhouse.sh start, then eval their env output (make test does this)", v)
		}
	}
	kc := kafkaconn.Config{Brokers: kafkaconn.ParseBrokers(os.Getenv("ATLAS_KAFKA_BROKERS"))}
	if c, err := net.DialTimeout("tcp", kc.BrokerList()[0], 3*time.Second); err != nil {
		t.Fatalf("cannot reach Kafka: %v", err)
	} else {
		c.Close()
	}
	var b [4]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	s := &stack{t: t, dir: t.TempDir(), prefix: "e2e-" + id + ".", database: "e2e_" + id, kafka: kc}
	s.topo = topology.Default(topology.Options{Prefix: s.prefix, Partitions: partitions})
	s.env = append(os.Environ(), "ATLAS_TOPIC_PREFIX="+s.prefix, "ATLAS_CLICKHOUSE_DATABASE="+s.database,
		fmt.Sprintf("ATLAS_SIMULATE_PARTITIONS=%d", partitions))
	s.atlas("topology", "apply", fmt.Sprintf("--partitions=%d", partitions))
	s.atlas("clickhouse", "migrate")
	t.Cleanup(s.cleanup)
	return s
}

func (s *stack) cleanup() {
	if s.t.Failed() {
		s.t.Logf("keeping database %s and topics %s* for inspection", s.database, s.prefix)
		return
	}
	client, _ := s.kafka.Client()
	var names []string
	for _, ts := range s.topo.Topics {
		names = append(names, s.topo.Name(ts.Name))
	}
	client.DeleteTopics(context.Background(), &kafka.DeleteTopicsRequest{Topics: names})
	if conn, err := s.admin(); err == nil {
		conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+s.database)
		conn.Close()
	}
}

// atlas runs the binary to completion and fails the test if it fails.
func (s *stack) atlas(args ...string) string {
	s.t.Helper()
	cmd := exec.Command(atlasBin, args...)
	cmd.Env = s.env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		s.t.Fatalf("atlas %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// proc is a running atlas process whose output goes to a log file.
type proc struct {
	cmd  *exec.Cmd
	log  string
	done chan error
}

func (s *stack) start(name string, args ...string) *proc {
	s.t.Helper()
	return s.startEnv(name, nil, args...)
}

// startEnv is start with extra environment variables.
func (s *stack) startEnv(name string, env []string, args ...string) *proc {
	s.t.Helper()
	logPath := filepath.Join(s.dir, fmt.Sprintf("%s-%d.log", name, time.Now().UnixNano()))
	f, err := os.Create(logPath)
	if err != nil {
		s.t.Fatal(err)
	}
	cmd := exec.Command(atlasBin, args...)
	cmd.Env = append(append([]string(nil), s.env...), env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("cannot start atlas %v: %v", args, err)
	}
	p := &proc{cmd: cmd, log: logPath, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait(); f.Close() }()
	s.t.Cleanup(func() { p.signal(syscall.SIGKILL); <-p.done })
	return p
}

func (p *proc) signal(sig syscall.Signal) { _ = p.cmd.Process.Signal(sig) }

func (p *proc) output() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// wait waits for the process to exit and returns its error.
func (p *proc) wait(d time.Duration) error {
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(d):
		return fmt.Errorf("still running after %s", d)
	}
}

func (s *stack) admin() (interface {
	Exec(ctx context.Context, q string, args ...any) error
	Close() error
}, error) {
	return warehouse.Open(context.Background(), warehouse.Config{Addr: os.Getenv("ATLAS_CLICKHOUSE_ADDR"), Database: "default",
		User: os.Getenv("ATLAS_CLICKHOUSE_ADMIN_USER"), Password: os.Getenv("ATLAS_CLICKHOUSE_ADMIN_PASSWORD")})
}

// drained reports whether the group has processed every record of its
// input topics, reading the engine's metadata of each commit (the committed
// offset itself can be lower: open windows restart from their first record).
func (s *stack) drained(group string, topics ...string) (bool, string) {
	client, err := s.kafka.Client()
	if err != nil {
		return false, err.Error()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	prog, err := s.progress(ctx, client, group, topics...)
	if err != nil {
		return false, err.Error()
	}
	for k, pe := range prog {
		if pe[1] > 0 && pe[0] < pe[1] {
			return false, fmt.Sprintf("%s processed up to %d of %d", k, pe[0], pe[1])
		}
	}
	return true, ""
}

func (s *stack) waitDrained(d time.Duration, group string, topics ...string) {
	s.t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, why := s.drained(group, topics...)
		if ok {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("group %s has not processed everything after %s: %s", group, d, why)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// metric sums the samples of a metric family on a process's /metrics; -1
// when the endpoint does not answer.
func metric(addr, name string) float64 {
	return metricFiltered(addr, name, func(string) bool { return true })
}

func metricFiltered(addr, name string, keep func(line string) bool) float64 {
	c := http.Client{Timeout: 2 * time.Second}
	res, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return -1
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	sum := 0.0
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, name) || (len(line) > len(name) && line[len(name)] != '{' && line[len(name)] != ' ') || !keep(line) {
			continue
		}
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			sum += v
		}
	}
	return sum
}

// waitMetric waits until a process's metric reaches at least min.
func (s *stack) waitMetric(p *proc, addr, name string, min float64, d time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(d)
	for metric(addr, name) < min {
		if time.Now().After(deadline) {
			s.t.Fatalf("%s did not reach %v within %s; process output:\n%s", name, min, d, lastLines(p.output(), 30))
		}
		if err := p.wait(0); err == nil || !strings.Contains(err.Error(), "still running") {
			s.t.Fatalf("process exited (%v) before %s reached %v:\n%s", err, name, min, lastLines(p.output(), 30))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitCaughtUp waits until a role has handled every record its partitions
// held when it fetched them: the engine's lag gauge sums to 0 after some
// records were handled (a restarted role replays from its commits first).
func (s *stack) waitCaughtUp(p *proc, addr string, d time.Duration) {
	s.t.Helper()
	s.waitMetric(p, addr, "atlas_engine_events_total", 1, d)
	deadline := time.Now().Add(d)
	for metric(addr, "atlas_engine_lag_records") != 0 {
		if time.Now().After(deadline) {
			s.t.Fatalf("the role has not caught up after %s: lag %v records", d, metric(addr, "atlas_engine_lag_records"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitReady waits until a process answers /readyz with 200.
func (s *stack) waitReady(p *proc, addr string, d time.Duration) {
	s.t.Helper()
	c := http.Client{Timeout: time.Second}
	deadline := time.Now().Add(d)
	for {
		if res, err := c.Get("http://" + addr + "/readyz"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("not ready after %s:\n%s", d, lastLines(p.output(), 30))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
