//go:build integration

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// Helpers of the chaos scenarios: SIGKILL and restart of the real broker
// and server that scripts/ started, peak memory of a process, every record
// of a topic, and an order-independent digest of a ClickHouse table.

// service is a server that scripts/<script> runs in the background and
// whose pid it keeps in $ATLAS_RUN_DIR/<pidFile>.
type service struct {
	name    string
	script  string
	pidFile string
	// marker must appear in the process's command line, next to the run
	// folder, so that a recycled pid is never signalled.
	marker string
}

var (
	kafkaService      = service{name: "Kafka", script: "kafka.sh", pidFile: "kafka/kafka.pid", marker: "kafka.Kafka"}
	clickhouseService = service{name: "ClickHouse", script: "clickhouse.sh", pidFile: "clickhouse/clickhouse.pid", marker: "clickhouse"}
)

// runDir is scripts/lib.sh's ATLAS_RUN_DIR.
func runDir() string {
	if d := os.Getenv("ATLAS_RUN_DIR"); d != "" {
		return d
	}
	tmp := os.Getenv("TMPDIR")
	if tmp == "" {
		tmp = "/tmp"
	}
	return filepath.Join(tmp, fmt.Sprintf("atlas-%d", os.Getuid()))
}

// pid returns the pid of the running server, or 0. It reads the pid file,
// and when that is missing (a start that lost a race removes it) looks for
// the server of this run folder among the processes.
func (sv service) pid() int {
	ours := func(pid int) bool {
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		return err == nil && bytes.Contains(cmdline, []byte(sv.marker)) &&
			bytes.Contains(cmdline, []byte(filepath.Join(runDir(), filepath.Dir(sv.pidFile))+"/"))
	}
	if b, err := os.ReadFile(filepath.Join(runDir(), sv.pidFile)); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 && ours(pid) {
			return pid
		}
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil && ours(pid) {
			return pid
		}
	}
	return 0
}

// kill sends SIGKILL to the server and waits until it is gone. The test
// fails when the server does not run under scripts/ (an external server
// cannot be killed from here).
func (sv service) kill(t *testing.T) {
	t.Helper()
	pid := sv.pid()
	if pid == 0 {
		t.Fatalf("cannot find the %s server that scripts/%s started (pid file %s): the chaos scenarios kill and restart it, so they need the services of scripts/, not external ones",
			sv.name, sv.script, filepath.Join(runDir(), sv.pidFile))
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("cannot kill %s (pid %d): %v", sv.name, pid, err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		// A zombie is gone for every purpose here; its parent reaps it.
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
			if f := strings.Fields(string(st)); len(f) > 2 && f[2] == "Z" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s (pid %d) survived SIGKILL for 15 s", sv.name, pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// start runs scripts/<script> start, which reuses the data folder, and
// returns how long the server took to answer.
func (sv service) start() (time.Duration, error) {
	begin := time.Now()
	cmd := exec.Command(filepath.Join("..", "scripts", sv.script), "start")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("scripts/%s start: %v\n%s", sv.script, err, out)
	}
	return time.Since(begin), nil
}

// restoreOnCleanup makes sure the server runs when the test ends, passed or
// failed: the tests after it need it.
func (sv service) restoreOnCleanup(t *testing.T) {
	t.Cleanup(func() {
		if sv.pid() != 0 {
			return
		}
		if _, err := sv.start(); err != nil {
			t.Errorf("cannot restore %s after the test: %v", sv.name, err)
		}
	})
}

// outage kills the server, keeps it down for d and starts it again,
// failing the test when it does not come back. It returns how long the
// restart took.
func (sv service) outage(t *testing.T, d time.Duration) time.Duration {
	t.Helper()
	sv.kill(t)
	time.Sleep(d)
	took, err := sv.start()
	if err != nil {
		t.Fatal(err)
	}
	return took
}

// peakRSS returns a process's peak resident set size (VmHWM) in bytes.
func peakRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			f := strings.Fields(rest)
			if len(f) == 2 && f[1] == "kB" {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				return kb << 10, err
			}
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}

// readAll reads every record of a topic, all partitions from the earliest
// offset up to the end they had when it started, in offset order per
// partition. It also returns the partition count.
func (s *stack) readAll(topic string) ([]kafka.Message, int) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	client, err := s.kafka.Client()
	if err != nil {
		s.t.Fatal(err)
	}
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil || len(md.Topics) != 1 || md.Topics[0].Error != nil {
		s.t.Fatalf("cannot read the metadata of %s: %v", topic, errors.Join(err, md.Topics[0].Error))
	}
	req := map[string][]kafka.OffsetRequest{}
	for _, p := range md.Topics[0].Partitions {
		req[topic] = append(req[topic], kafka.FirstOffsetOf(p.ID), kafka.LastOffsetOf(p.ID))
	}
	// After a broker restart, leaders come back one partition at a time
	// (a broker with many partitions took over a minute): wait out a
	// temporary error of a partition, such as Not Leader For Partition.
	var offs *kafka.ListOffsetsResponse
	for {
		offs, err = client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: req})
		if err != nil {
			s.t.Fatalf("cannot list the offsets of %s: %v", topic, err)
		}
		temporary := false
		for _, po := range offs.Topics[topic] {
			var ke kafka.Error
			temporary = temporary || (errors.As(po.Error, &ke) && ke.Temporary())
		}
		if !temporary || ctx.Err() != nil {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	dialer, err := s.kafka.Dialer()
	if err != nil {
		s.t.Fatal(err)
	}
	var out []kafka.Message
	for _, po := range offs.Topics[topic] {
		if po.Error != nil {
			s.t.Fatalf("cannot list the offsets of %s/%d: %v", topic, po.Partition, po.Error)
		}
		if po.LastOffset <= po.FirstOffset {
			continue
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: s.kafka.BrokerList(), Topic: topic, Partition: po.Partition,
			Dialer: dialer, MaxWait: 100 * time.Millisecond, MaxBytes: 8 << 20})
		if err := r.SetOffset(po.FirstOffset); err != nil {
			s.t.Fatal(err)
		}
		for {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				r.Close()
				s.t.Fatalf("cannot read %s/%d at offset %d of %d..%d: %v", topic, po.Partition, len(out), po.FirstOffset, po.LastOffset, err)
			}
			out = append(out, m)
			if m.Offset >= po.LastOffset-1 {
				break
			}
		}
		r.Close()
	}
	return out, len(md.Topics[0].Partitions)
}

// chHTTP runs a query over ClickHouse's HTTP interface as the admin user
// and returns the body (TabSeparated unless the query says otherwise).
func chHTTP(query string) ([]byte, error) {
	addr := os.Getenv("ATLAS_CLICKHOUSE_HTTP_ADDR")
	if addr == "" {
		return nil, errors.New("ATLAS_CLICKHOUSE_HTTP_ADDR is not set (eval \"$(scripts/clickhouse.sh env)\")")
	}
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/", strings.NewReader(query))
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-ClickHouse-User", os.Getenv("ATLAS_CLICKHOUSE_ADMIN_USER"))
	req.Header.Set("X-ClickHouse-Key", os.Getenv("ATLAS_CLICKHOUSE_ADMIN_PASSWORD"))
	c := http.Client{Timeout: time.Minute}
	res, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, err
	}
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("ClickHouse answered %s to %q: %s", res.Status, query, bytes.TrimSpace(body))
	}
	return body, nil
}

// chTable is one table or view of the test database.
type chTable struct {
	name, engine string
	// columns are the columns a digest covers: all but written_at, the
	// wall-clock time of the insert, which a rewrite of the same row
	// changes.
	columns []string
}

// tables lists every table and view of the test database, materialized
// views' inner tables included.
func (s *stack) tables() []chTable {
	s.t.Helper()
	db := s.database // "e2e_" and hex digits: nothing to quote
	body, err := chHTTP(fmt.Sprintf("SELECT name, engine FROM system.tables WHERE database = '%s' ORDER BY name", db))
	if err != nil {
		s.t.Fatal(err)
	}
	var out []chTable
	for _, line := range strings.Split(strings.TrimSpace(string(body)), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 2 {
			continue
		}
		tb := chTable{name: f[0], engine: f[1]}
		cols, err := chHTTP(fmt.Sprintf("SELECT name FROM system.columns WHERE database = '%s' AND table = '%s' ORDER BY name", db, strings.ReplaceAll(tb.name, "'", "\\'")))
		if err != nil {
			s.t.Fatal(err)
		}
		for _, c := range strings.Fields(string(cols)) {
			if c != "written_at" {
				tb.columns = append(tb.columns, "`"+c+"`")
			}
		}
		out = append(out, tb)
	}
	if len(out) == 0 {
		s.t.Fatalf("database %s has no tables", s.database)
	}
	return out
}

// tableDigest is an order-independent digest of a table's rows: the count
// and the sum (mod 2^64) of a SHA-256 prefix of each row's TabSeparated
// text. Replacing tables are read with FINAL, so the digest is of what
// every query sees, not of which parts happen to be merged.
type tableDigest struct {
	Rows int64
	Sum  uint64
}

func (d tableDigest) String() string { return fmt.Sprintf("%d rows, sum %016x", d.Rows, d.Sum) }

func (s *stack) digest(tb chTable) tableDigest {
	s.t.Helper()
	final := ""
	if strings.HasSuffix(tb.engine, "MergeTree") {
		final = " FINAL"
	}
	body, err := chHTTP(fmt.Sprintf("SELECT %s FROM `%s`.`%s`%s FORMAT TabSeparated", strings.Join(tb.columns, ", "), s.database, tb.name, final))
	if err != nil {
		s.t.Fatal(err)
	}
	var d tableDigest
	for _, line := range bytes.Split(body, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		h := sha256.Sum256(line)
		d.Rows++
		d.Sum += binary.LittleEndian.Uint64(h[:8])
	}
	return d
}

// digests returns the digest of every table and view of the test database.
func (s *stack) digests() map[string]tableDigest {
	s.t.Helper()
	out := map[string]tableDigest{}
	for _, tb := range s.tables() {
		out[tb.name] = s.digest(tb)
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
