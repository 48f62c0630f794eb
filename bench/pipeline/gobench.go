package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// goBench is one Go benchmark package whose test binary is built once and
// run once per repetition, so that repetitions of different packages
// interleave instead of running back to back.
type goBench struct {
	name string   // short name for logs
	pkg  string   // ./consumers/...
	tags string   // build tags
	args []string // -test.* arguments
	bin  string
}

// goBenches are the benchmarks behind rows (d), (e) and (h).
func goBenches() []*goBench {
	return []*goBench{
		// Two passes over 100k events per benchmark and repetition.
		{name: "per-event costs", pkg: "./bench/perevent", args: []string{"-test.bench", ".", "-test.cpu", "1", "-test.benchtime", "2x"}},
		{name: "ClickHouse sink", pkg: "./consumers/aggregates/chsink", tags: "integration",
			args: []string{"-test.bench", "^(BenchmarkWriter|BenchmarkPlainBatch)$"}},
		{name: "embeddings state", pkg: "./consumers/embeddings",
			args: []string{"-test.bench", "^BenchmarkRestoreProfiles$/^watched=20$"}},
		{name: "1M-profile restore", pkg: "./consumers/embeddings/changelog", tags: "integration",
			args: []string{"-test.bench", "^BenchmarkRestoreAMillionProfiles$", "-test.benchtime", "1x"}},
	}
}

// build compiles the package's test binary into dir.
func (g *goBench) build(root, dir string) error {
	g.bin = filepath.Join(dir, strings.ReplaceAll(strings.Trim(g.pkg, "./"), "/", "_")+".test")
	args := []string{"test", "-c", "-o", g.bin}
	if g.tags != "" {
		args = append(args, "-tags", g.tags)
	}
	cmd := exec.Command("go", append(args, g.pkg)...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("cannot build the benchmarks of %s: %w\n%s", g.pkg, err, out)
	}
	return nil
}

// samples are the metrics of benchmark results by benchmark name and
// unit, one value per repetition.
type samples map[string]map[string][]float64

func (s samples) get(bench, unit string) []float64 { return s[bench][unit] }

// run runs the benchmarks once (in the package's folder, as go test
// does) and adds their metrics to s.
func (g *goBench) run(root string, s samples) error {
	args := append([]string{"-test.run", "^$", "-test.benchmem", "-test.count", "1"}, g.args...)
	cmd := exec.Command(g.bin, args...)
	cmd.Dir = filepath.Join(root, g.pkg)
	cmd.Env = os.Environ()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("benchmarks of %s failed: %w\n%s", g.pkg, err, lastLines(out.String(), 30))
	}
	n := parseBench(out.Bytes(), s)
	if n == 0 {
		return fmt.Errorf("benchmarks of %s printed no result:\n%s", g.pkg, lastLines(out.String(), 30))
	}
	return nil
}

// parseBench reads `go test -bench` lines ("BenchmarkX-2  10  123 ns/op
// 4.5 rows/s …") into s, the name without its -GOMAXPROCS suffix, and
// returns how many it read.
func parseBench(out []byte, s samples) int {
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		if _, err := strconv.Atoi(f[1]); err != nil {
			continue
		}
		name := f[0]
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i]
			}
		}
		if s[name] == nil {
			s[name] = map[string][]float64{}
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			s[name][f[i+1]] = append(s[name][f[i+1]], v)
		}
		n++
	}
	return n
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// ingest runs row (g): producers/ingest/bench (gateway and raw Writer in
// one process, its own interleaved repetitions) and returns, per client
// count, the per-repetition events/s of the raw Writer and the gateway.
func ingest(root string, reps int, concurrency string) (map[int][2][]float64, string, error) {
	cmd := exec.Command("go", "run", "./producers/ingest/bench", "-reps", strconv.Itoa(reps), "-concurrency", concurrency)
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return nil, out.String(), fmt.Errorf("ingest benchmark failed: %w\n%s", err, lastLines(out.String(), 30))
	}
	res := map[int][2][]float64{}
	clients := 0
	sc := bufio.NewScanner(bytes.NewReader(out.Bytes()))
	for sc.Scan() {
		line := sc.Text()
		var c int
		if _, err := fmt.Sscanf(line, "%d clients per side", &c); err == nil {
			clients = c
			continue
		}
		f := strings.Fields(line)
		if clients == 0 || len(f) < 3 {
			continue
		}
		if _, err := strconv.Atoi(f[0]); err != nil {
			continue
		}
		raw, err1 := strconv.ParseFloat(f[1], 64)
		gw, err2 := strconv.ParseFloat(f[2], 64)
		if err1 != nil || err2 != nil {
			continue
		}
		r := res[clients]
		r[0], r[1] = append(r[0], raw), append(r[1], gw)
		res[clients] = r
	}
	if len(res) == 0 {
		return nil, out.String(), fmt.Errorf("ingest benchmark printed no table:\n%s", lastLines(out.String(), 30))
	}
	return res, out.String(), nil
}
