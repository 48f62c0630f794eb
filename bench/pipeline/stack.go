package main

import (
	"bytes"
	"context"
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
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/segmentio/kafka-go"

	"github.com/atlas-stream/atlas/consumers/engine"
	"github.com/atlas-stream/atlas/internal/kafkaconn"
	"github.com/atlas-stream/atlas/schemas/warehouse"
	"github.com/atlas-stream/atlas/topology"
)

// rekeyTopic is the anomaly role's internal topic (cmd/atlas/run_anomaly.go),
// which the topology does not declare: the role creates it.
const rekeyTopic = "atlas.anomaly.rekey.v1"

// stack is one repetition's isolated slice of the real services: its own
// topic prefix (so its own topics and consumer groups) and its own
// ClickHouse database, as the end-to-end tests make them.
type stack struct {
	b        *bench
	name     string
	prefix   string
	database string
	env      []string
	topo     topology.Topology
}

func (b *bench) newStack(name string) (*stack, error) {
	s := &stack{b: b, name: name, prefix: "bench-" + b.id + "-" + name + ".", database: "bench_" + b.id + "_" + name}
	s.topo = topology.Default(topology.Options{Prefix: s.prefix, Partitions: b.partitions})
	s.env = append(os.Environ(), "ATLAS_TOPIC_PREFIX="+s.prefix, "ATLAS_CLICKHOUSE_DATABASE="+s.database,
		// No recommendations API: nothing queries it, and its port could clash.
		"ATLAS_EMBEDDINGS_ADDR=", "ATLAS_LOG_LEVEL=warn")
	if _, err := s.atlas("topology", "apply", fmt.Sprintf("--partitions=%d", b.partitions)); err != nil {
		return nil, err
	}
	if _, err := s.atlas("clickhouse", "migrate"); err != nil {
		s.cleanup()
		return nil, err
	}
	return s, nil
}

// cleanup deletes the stack's topics and database (unless -keep).
func (s *stack) cleanup() {
	if s.b.keep {
		logf("keeping database %s and topics %s*", s.database, s.prefix)
		return
	}
	if client, err := s.b.kafka.Client(); err == nil {
		names := []string{s.prefix + rekeyTopic}
		for _, ts := range s.topo.Topics {
			names = append(names, s.topo.Name(ts.Name))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		client.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: names})
		cancel()
	}
	if conn, err := s.b.clickhouse("admin", "default"); err == nil {
		conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+s.database)
		conn.Close()
	}
}

// atlas runs the binary to completion.
func (s *stack) atlas(args ...string) (string, error) {
	cmd := exec.Command(s.b.atlasBin, args...)
	cmd.Env = s.env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("cannot run atlas %s: %w\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String(), nil
}

// proc is a running atlas process whose output goes to a log file.
type proc struct {
	cmd  *exec.Cmd
	log  string
	done chan error
}

func (s *stack) start(args ...string) (*proc, error) {
	path := filepath.Join(s.b.dir, fmt.Sprintf("%s-%s-%d.log", s.name, args[0], time.Now().UnixNano()))
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(s.b.atlasBin, args...)
	cmd.Env = s.env
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("cannot start atlas %v: %w", args, err)
	}
	p := &proc{cmd: cmd, log: path, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait(); f.Close() }()
	return p, nil
}

// stop sends SIGTERM and waits for a clean exit; after d it kills.
func (p *proc) stop(d time.Duration) error {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
		if err != nil {
			return fmt.Errorf("atlas exited with %v:\n%s", err, p.tail(20))
		}
		return nil
	case <-time.After(d):
		p.cmd.Process.Kill()
		return fmt.Errorf("atlas did not stop within %s of SIGTERM:\n%s", d, p.tail(20))
	}
}

// exited reports whether the process has exited (and why).
func (p *proc) exited() (bool, error) {
	select {
	case err := <-p.done:
		p.done <- err
		return true, err
	default:
		return false, nil
	}
}

func (p *proc) tail(n int) string {
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
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
		if !strings.HasPrefix(line, name) || (len(line) > len(name) && line[len(name)] != '{' && line[len(name)] != ' ') {
			continue
		}
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			sum += v
		}
	}
	return sum
}

// groupInputs are the consumer groups of `atlas run all` and the topics
// each must have processed to the end.
func (s *stack) groupInputs() map[string][]string {
	t := s.topo
	pb, br := t.Name(topology.Playback), t.Name(topology.Browse)
	return map[string][]string{
		t.GroupID(topology.AggregatesGroup): {pb, br, t.Name(topology.Catalog)},
		t.GroupID(topology.EmbeddingsGroup): {pb, br},
		t.GroupID(topology.AnomalyGroup):    {pb, br, s.prefix + rekeyTopic},
	}
}

// drained reports whether every group has processed every record of its
// input topics, reading the engine's metadata of each commit (the
// committed offset itself can be lower: open windows restart from their
// first record). A commit comes only after what the records produced is
// durable, so drained means durable.
func (s *stack) drained(ctx context.Context, client *kafka.Client) (bool, string, error) {
	for group, topics := range s.groupInputs() {
		md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
		if err != nil {
			return false, "", err
		}
		req := map[string][]kafka.OffsetRequest{}
		fetch := map[string][]int{}
		for _, tp := range md.Topics {
			for _, p := range tp.Partitions {
				req[tp.Name] = append(req[tp.Name], kafka.LastOffsetOf(p.ID))
				fetch[tp.Name] = append(fetch[tp.Name], p.ID)
			}
		}
		ends, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: req})
		if err != nil {
			return false, "", err
		}
		commits, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: fetch})
		if err != nil {
			return false, "", err
		}
		done := map[string]int64{}
		for topic, ps := range commits.Topics {
			for _, p := range ps {
				done[fmt.Sprint(topic, "/", p.Partition)] = engine.ProcessedOffset(p.Metadata)
			}
		}
		for topic, ps := range ends.Topics {
			for _, p := range ps {
				k := fmt.Sprint(topic, "/", p.Partition)
				if p.LastOffset > 0 && done[k] < p.LastOffset {
					return false, fmt.Sprintf("%s processed %s up to %d of %d", group, k, done[k], p.LastOffset), nil
				}
			}
		}
	}
	return true, "", nil
}

// endOffsets sums the end offsets of topics: how many records they hold.
func endOffsets(ctx context.Context, kc kafkaconn.Config, topics ...string) (int64, error) {
	client, err := kc.Client()
	if err != nil {
		return 0, err
	}
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return 0, err
	}
	req := map[string][]kafka.OffsetRequest{}
	for _, tp := range md.Topics {
		if tp.Error != nil {
			return 0, tp.Error
		}
		for _, p := range tp.Partitions {
			req[tp.Name] = append(req[tp.Name], kafka.LastOffsetOf(p.ID))
		}
	}
	res, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: req})
	if err != nil {
		return 0, err
	}
	var n int64
	for _, ps := range res.Topics {
		for _, p := range ps {
			if p.Error != nil {
				return 0, p.Error
			}
			n += p.LastOffset
		}
	}
	return n, nil
}

// reader opens the stack's database as the read-only user, as dashboards do.
func (s *stack) reader() (driver.Conn, error) {
	return s.b.clickhouse("reader", s.database)
}

// clickhouse opens database as one of the users "admin" or "reader".
func (b *bench) clickhouse(who, database string) (driver.Conn, error) {
	cfg := warehouse.Config{Addr: os.Getenv("ATLAS_CLICKHOUSE_ADDR"), Database: database, DialTimeout: 5 * time.Second}
	switch who {
	case "admin":
		cfg.User, cfg.Password = envOr("ATLAS_CLICKHOUSE_ADMIN_USER", "atlas_admin"), os.Getenv("ATLAS_CLICKHOUSE_ADMIN_PASSWORD")
	case "reader":
		cfg.User, cfg.Password = envOr("ATLAS_CLICKHOUSE_READER_USER", "atlas_reader"), os.Getenv("ATLAS_CLICKHOUSE_READER_PASSWORD")
	default:
		panic("BUG: unknown ClickHouse user " + who)
	}
	return warehouse.Open(context.Background(), cfg)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
