package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/atlas-stream/atlas/schemas"
)

// metricSample is one line of the Prometheus text format.
type metricSample struct {
	name   string
	labels map[string]string
	value  float64
}

// parseMetrics reads the Prometheus text exposition format: comments are
// skipped, each other line is name{label="value",…} value [timestamp].
func parseMetrics(r io.Reader) ([]metricSample, error) {
	var out []metricSample
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		s := metricSample{labels: map[string]string{}}
		i := strings.IndexAny(line, "{ ")
		if i < 0 {
			return nil, fmt.Errorf("cannot parse metrics line %d: no value", n)
		}
		s.name, line = line[:i], line[i:]
		if line[0] == '{' {
			rest, err := parseLabels(line[1:], s.labels)
			if err != nil {
				return nil, fmt.Errorf("cannot parse metrics line %d: %w", n, err)
			}
			line = rest
		}
		fields := strings.Fields(line)
		if len(fields) == 0 {
			return nil, fmt.Errorf("cannot parse metrics line %d: no value", n)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return nil, fmt.Errorf("cannot parse metrics line %d: %w", n, err)
		}
		s.value = v
		out = append(out, s)
	}
	return out, sc.Err()
}

// parseLabels reads `k="v",…}` into m and returns what follows the brace.
func parseLabels(s string, m map[string]string) (string, error) {
	for {
		s = strings.TrimLeft(s, " ,")
		if strings.HasPrefix(s, "}") {
			return s[1:], nil
		}
		eq := strings.IndexByte(s, '=')
		if eq < 0 || len(s) < eq+2 || s[eq+1] != '"' {
			return "", errors.New("malformed label")
		}
		key := strings.TrimSpace(s[:eq])
		s = s[eq+2:]
		var v strings.Builder
		closed := false
		for i := 0; i < len(s); i++ {
			c := s[i]
			if c == '\\' && i+1 < len(s) {
				i++
				switch s[i] {
				case 'n':
					v.WriteByte('\n')
				default:
					v.WriteByte(s[i])
				}
				continue
			}
			if c == '"' {
				s, closed = s[i+1:], true
				break
			}
			v.WriteByte(c)
		}
		if !closed {
			return "", errors.New("unterminated label value")
		}
		m[key] = v.String()
	}
}

// roleStat is what the metrics say about one role.
type roleStat struct {
	role string
	// events counts the records of the input topics processed (valid ones)
	// and deadLetters the ones sent to the dead-letter topic.
	events, deadLetters float64
	// lag sums every partition's lag, internal topics included.
	lag    float64
	claims float64
}

// engineStats sums the engine's series per role; inputs are the topics
// whose records count as processed.
func engineStats(samples []metricSample, inputs []string) (roles []*roleStat, processStart time.Time) {
	byRole := map[string]*roleStat{}
	get := func(s metricSample) *roleStat {
		r := s.labels["role"]
		if byRole[r] == nil {
			byRole[r] = &roleStat{role: r}
		}
		return byRole[r]
	}
	isInput := func(s metricSample) bool {
		for _, t := range inputs {
			if s.labels["topic"] == t {
				return true
			}
		}
		return false
	}
	for _, s := range samples {
		switch s.name {
		case "atlas_engine_events_total":
			if isInput(s) {
				get(s).events += s.value
			}
		case "atlas_engine_dead_letters_total":
			if isInput(s) {
				get(s).deadLetters += s.value
			}
		case "atlas_engine_lag_records":
			get(s).lag += s.value
		case "atlas_engine_claims":
			get(s).claims += s.value
		case "process_start_time_seconds":
			processStart = time.Unix(0, int64(s.value*1e9))
		}
	}
	for _, r := range byRole {
		roles = append(roles, r)
	}
	sort.Slice(roles, func(i, j int) bool { return roles[i].role < roles[j].role })
	return roles, processStart
}

// caughtUp reports whether every role processed at least sent input
// records and has no lag.
func caughtUp(roles []*roleStat, sent int64) bool {
	if len(roles) == 0 {
		return false
	}
	for _, r := range roles {
		if r.events+r.deadLetters < float64(sent) || r.lag > 0 {
			return false
		}
	}
	return true
}

func scrapeMetrics(ctx context.Context, url string) ([]metricSample, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot read the roles' metrics: %w (is atlas run all serving --ops-addr there?)", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("cannot read the roles' metrics at %s: %s", url, resp.Status)
	}
	return parseMetrics(resp.Body)
}

// catchUp is the outcome of waitCaughtUp.
type catchUp struct {
	done         bool
	at           time.Time // when the roles were seen caught up (or gave up)
	roles        []*roleStat
	processStart time.Time
}

// waitCaughtUp polls the metrics until every role caught up (twice in a
// row, a second apart, since a partition's lag is only updated when it
// fetches) or wait passes, showing progress on w.
func waitCaughtUp(ctx context.Context, url string, inputs []string, sent int64, wait time.Duration, w io.Writer) (catchUp, error) {
	tty := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	deadline := time.Now().Add(wait)
	streak, lastLog := 0, time.Time{}
	var res catchUp
	for {
		samples, err := scrapeMetrics(ctx, url)
		now := time.Now()
		if err != nil {
			if now.After(deadline) {
				return res, err
			}
		} else {
			res.roles, res.processStart = engineStats(samples, inputs)
			res.at = now
			if caughtUp(res.roles, sent) {
				streak++
			} else {
				streak = 0
			}
			if streak >= 2 || (wait == 0 && streak == 1) {
				res.done = true
				if tty {
					fmt.Fprint(w, "\r\033[K")
				}
				return res, nil
			}
			var parts []string
			var lag float64
			for _, r := range res.roles {
				parts = append(parts, fmt.Sprintf("%s %d/%d", r.role, int64(r.events+r.deadLetters), sent))
				lag += r.lag
			}
			switch {
			case tty:
				fmt.Fprintf(w, "\r\033[Kwaiting for the roles to process the run: %s, lag %d", strings.Join(parts, ", "), int64(lag))
			case now.Sub(lastLog) >= 10*time.Second:
				slog.Info("waiting for the roles to process the run", "processed", strings.Join(parts, ", "), "lag", int64(lag))
				lastLog = now
			}
		}
		if !now.Before(deadline) {
			if tty {
				fmt.Fprintln(w)
			}
			return res, nil
		}
		sleepCtx(ctx, time.Second)
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
	}
}

// writeThroughput prints per role the events processed, their rate from
// start (since, or the process start) until the roles caught up, the lag
// now and the dead letters.
func writeThroughput(ctx context.Context, out io.Writer, url string, inputs []string, c catchUp, since, waitStart time.Time) error {
	samples, err := scrapeMetrics(ctx, url)
	if err != nil {
		return err
	}
	roles, processStart := engineStats(samples, inputs)
	start := since
	if start.IsZero() {
		start = processStart
	}
	end := c.at
	if !c.done || end.IsZero() {
		end = time.Now()
	}
	secs := end.Sub(start).Seconds()
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "ROLE\tEVENTS PROCESSED\tEVENTS/S\tLAG NOW\tDEAD LETTERS\tPARTITIONS\t")
	var total float64
	for _, r := range roles {
		rate := "-"
		if secs > 0 {
			rate = fmt.Sprintf("%.0f", r.events/secs)
		}
		total += r.events
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%d\t\n", r.role, int64(r.events), rate, int64(r.lag), int64(r.deadLetters), int64(r.claims))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(roles) == 0 {
		fmt.Fprintln(out, "(no role reports engine metrics)")
		return nil
	}
	what := "since the traffic started"
	if since.IsZero() {
		what = "since the roles started"
	}
	var cpu float64
	for _, s := range samples {
		if s.name == "process_cpu_seconds_total" {
			cpu = s.value
		}
	}
	if cpu > 0 && !processStart.IsZero() {
		fmt.Fprintf(out, "atlas run all: %.0f s of CPU in %s since it started, %.1f µs of CPU per event and role.\n",
			cpu, time.Since(processStart).Round(time.Second), 1e6*cpu/max(total, 1))
	}
	if c.done {
		fmt.Fprintf(out, "Events/s: %s until every role had processed the run (%s), %s after the traffic ended; the roles and the simulator share this machine's CPUs.\n",
			what, end.Sub(start).Round(time.Second), c.at.Sub(waitStart).Round(time.Second))
	} else {
		fmt.Fprintf(out, "The roles had not processed the whole run when the report was printed; events/s %s until now.\n", what)
	}
	return nil
}

// httpStatusError is a non-2xx answer.
type httpStatusError struct {
	url  string
	code int
	body string
}

func (e *httpStatusError) Error() string {
	return fmt.Sprintf("GET %s: %d %s", e.url, e.code, strings.TrimSpace(e.body))
}

// getJSON decodes the JSON answer of url into v; a 404 with a JSON body is
// decoded too (the API's cold-start answer) and returned as an
// httpStatusError.
func getJSON(ctx context.Context, url string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the embeddings API: %w (is atlas run all serving it there? ATLAS_EMBEDDINGS_ADDR)", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("cannot read GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return &httpStatusError{url: url, code: resp.StatusCode, body: string(body)}
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("cannot decode GET %s: %w", url, err)
	}
	return nil
}

// readAlertTopic reads every alert the topic holds, partition by
// partition, up to its end when called.
func readAlertTopic(ctx context.Context, g *globals, topic string) ([]schemas.Alert, error) {
	kc, err := g.kafka()
	if err != nil {
		return nil, err
	}
	d, err := kc.Dialer()
	if err != nil {
		return nil, err
	}
	brokers := kc.BrokerList()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", brokers[0])
	if err != nil {
		return nil, fmt.Errorf("cannot reach Kafka at %s: %w", brokers[0], err)
	}
	parts, err := conn.ReadPartitions(topic)
	conn.Close()
	if err != nil {
		return nil, fmt.Errorf("cannot read the partitions of %s: %w", topic, err)
	}
	var alerts []schemas.Alert
	for _, p := range parts {
		got, err := readAlertPartition(ctx, d, brokers[0], topic, p.ID)
		if err != nil {
			return nil, err
		}
		alerts = append(alerts, got...)
	}
	return alerts, nil
}

func readAlertPartition(ctx context.Context, d *kafka.Dialer, broker, topic string, partition int) ([]schemas.Alert, error) {
	conn, err := d.DialLeader(ctx, "tcp", broker, topic, partition)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the leader of %s/%d: %w", topic, partition, err)
	}
	defer conn.Close()
	first, last, err := conn.ReadOffsets()
	if err != nil {
		return nil, fmt.Errorf("cannot read the offsets of %s/%d: %w", topic, partition, err)
	}
	var out []schemas.Alert
	for off := first; off < last; {
		if _, err := conn.Seek(off, kafka.SeekAbsolute); err != nil {
			return nil, fmt.Errorf("cannot seek %s/%d to %d: %w", topic, partition, off, err)
		}
		if dl, ok := ctx.Deadline(); ok {
			conn.SetReadDeadline(dl)
		}
		batch := conn.ReadBatch(1, 8<<20)
		n := 0
		for {
			m, err := batch.ReadMessage()
			if err != nil {
				break
			}
			n++
			off = m.Offset + 1
			var a schemas.Alert
			if err := schemas.DecodeAlert(m.Value, &a); err != nil {
				slog.Warn("skipping a record that is not an alert", "topic", topic, "partition", partition, "offset", m.Offset, "err", err)
				continue
			}
			out = append(out, a)
			if off >= last {
				break
			}
		}
		if err := batch.Close(); err != nil && n == 0 {
			return nil, fmt.Errorf("cannot read %s/%d at %d: %w", topic, partition, off, err)
		}
		if n == 0 {
			break
		}
	}
	return out, nil
}
