package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/spf13/cobra"

	"github.com/atlas-stream/atlas/schemas"
	"github.com/atlas-stream/atlas/topology"
)

func init() { subcommands = append(subcommands, newAlertsCmd) }

func newAlertsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "alerts",
		Short: "Read the alert topic: tail",
		Example: `  atlas alerts tail --from 2h --follow=false
  atlas alerts tail --min-severity high --json`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newAlertsTailCmd(g))
	return cmd
}

type tailFlags struct {
	from        string
	kinds       []string
	statuses    []string
	minSeverity string
	json        bool
	format      string
	follow      bool
	all         bool
	limit       int
}

func newAlertsTailCmd(g *globals) *cobra.Command {
	var f tailFlags
	cmd := &cobra.Command{
		Use:   "tail",
		Short: "Follow the alert topic: readable lines or JSON, filtered by kind, status and severity",
		Long: `Print the alerts of atlas.alerts.v1 as they arrive, one per line, or as JSON
objects (one per line) with --format json (or --json).

--from says where to start: "now" (default) for new alerts only,
"beginning" for everything the topic keeps (30 days), an RFC 3339 time, or a
duration back from now ("2h"). The time is when the alert reached the topic;
the line shows the event time the detector raised it at.

The topic is at-least-once: after a restart of the anomaly role the same
alert can come twice. They carry the same id; tail prints each (id, status,
severity) once unless --all is given.

Without --follow=false, tail runs until interrupted; with it, it stops once
it has read what the topic held when it started.`,
		Example: `  # the fraud team's console: new high and critical alerts
  atlas alerts tail --min-severity high

  # everything about account sharing since this morning, as JSON
  atlas alerts tail --from 2026-11-02T06:00:00Z --kind account_sharing --json

  # quality incidents of the last two hours, then stop
  atlas alerts tail --from 2h --kind quality_degradation --follow=false`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			start, err := parseFrom(f.from, time.Now())
			if err != nil {
				return &usageError{err}
			}
			switch f.format {
			case "json":
				f.json = true
			case "text":
			default:
				return &usageError{fmt.Errorf("invalid --format %q: want text or json", f.format)}
			}
			minSev, err := parseSeverity(f.minSeverity)
			if err != nil {
				return &usageError{err}
			}
			for _, s := range f.statuses {
				if !slices.Contains([]string{"firing", "escalated", "resolved"}, s) {
					return &usageError{fmt.Errorf("invalid --status %q: want firing, escalated or resolved", s)}
				}
			}
			kc, err := g.kafka()
			if err != nil {
				return err
			}
			topic := topology.Default(topology.Options{Prefix: g.topicPrefix}).Name(topology.Alerts)
			filter := alertFilter{kinds: f.kinds, statuses: f.statuses, minSeverity: minSev}
			return tailAlerts(cmd.Context(), kc.BrokerList(), kcDialer(g), topic, start, f, filter, cmd.OutOrStdout())
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.from, "from", "now", `where to start: now, beginning, an RFC 3339 time, or a duration back ("2h")`)
	fl.StringSliceVar(&f.kinds, "kind", nil, "only these kinds (account_sharing, impossible_travel, bot, credential_stuffing, quality_degradation)")
	fl.StringSliceVar(&f.statuses, "status", nil, "only these statuses (firing, escalated, resolved)")
	fl.StringVar(&f.minSeverity, "min-severity", "info", "only alerts at least this severe: info, warning, high or critical")
	fl.StringVar(&f.format, "format", "text", "output: text (a readable line per alert) or json (one object per line), as in atlas query")
	fl.BoolVar(&f.json, "json", false, "short for --format json")
	fl.BoolVar(&f.follow, "follow", true, "keep waiting for new alerts; false stops at the end of the topic as it was at the start")
	fl.BoolVar(&f.all, "all", false, "print copies of an alert that was already printed (same id, status and severity)")
	fl.IntVar(&f.limit, "limit", 0, "stop after printing this many alerts (0: no limit)")
	return cmd
}

func kcDialer(g *globals) func() (*kafka.Dialer, error) {
	return func() (*kafka.Dialer, error) {
		kc, err := g.kafka()
		if err != nil {
			return nil, err
		}
		return kc.Dialer()
	}
}

// startAt is where tail starts: a special offset or a time.
type startAt struct {
	offset int64 // kafka.FirstOffset or kafka.LastOffset when at is zero
	at     time.Time
}

func parseFrom(s string, now time.Time) (startAt, error) {
	switch s {
	case "", "now":
		return startAt{offset: kafka.LastOffset}, nil
	case "beginning", "start", "earliest":
		return startAt{offset: kafka.FirstOffset}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return startAt{at: t}, nil
	}
	// "2h" and "-2h" (as atlas query writes it) both mean two hours ago.
	if d, err := time.ParseDuration(strings.TrimPrefix(s, "-")); err == nil && d > 0 {
		return startAt{at: now.Add(-d)}, nil
	}
	return startAt{}, fmt.Errorf("invalid --from %q: want now, beginning, an RFC 3339 time or a duration such as 2h", s)
}

var severityNames = map[string]schemas.Severity{"info": schemas.SeverityInfo, "warning": schemas.SeverityWarning,
	"high": schemas.SeverityHigh, "critical": schemas.SeverityCritical}

func parseSeverity(s string) (schemas.Severity, error) {
	if v, ok := severityNames[strings.ToLower(s)]; ok {
		return v, nil
	}
	return 0, fmt.Errorf("invalid --min-severity %q: want info, warning, high or critical", s)
}

func severityName(s schemas.Severity) string {
	for k, v := range severityNames {
		if v == s {
			return k
		}
	}
	return fmt.Sprint(uint8(s))
}

type alertFilter struct {
	kinds, statuses []string
	minSeverity     schemas.Severity
}

func (f alertFilter) keep(a *schemas.Alert) bool {
	return (len(f.kinds) == 0 || slices.Contains(f.kinds, a.Kind)) &&
		(len(f.statuses) == 0 || slices.Contains(f.statuses, string(a.Status))) &&
		a.Severity >= f.minSeverity
}

// alertLine renders an alert for a person: event time, status, severity,
// kind, subject, score, id and the evidence.
func alertLine(a *schemas.Alert) string {
	keys := make([]string, 0, len(a.Evidence))
	for k := range a.Evidence {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var ev strings.Builder
	for _, k := range keys {
		ev.WriteString(" ")
		ev.WriteString(k)
		ev.WriteString("=")
		v := a.Evidence[k]
		if strings.ContainsAny(v, " \t") {
			v = fmt.Sprintf("%q", v)
		}
		ev.WriteString(v)
	}
	return fmt.Sprintf("%s  %-9s %-8s %-19s %-36s score=%-8.4g id=%s first_seen=%s%s",
		time.UnixMilli(a.DetectedAt).UTC().Format(time.RFC3339), strings.ToUpper(string(a.Status)), severityName(a.Severity),
		a.Kind, a.Subject, a.Score, a.ID, time.UnixMilli(a.FirstSeen).UTC().Format(time.RFC3339), ev.String())
}

// alertJSON is the JSON form of an alert, with readable times beside the
// milliseconds.
type alertJSON struct {
	*schemas.Alert
	SeverityName string `json:"severity"`
	DetectedTime string `json:"detected_time"`
	FirstTime    string `json:"first_seen_time"`
	Partition    int    `json:"partition"`
	Offset       int64  `json:"offset"`
}

// tailAlerts reads every partition of the alert topic from start and
// prints what passes the filter, each (id, status, severity) once unless
// f.all.
func tailAlerts(ctx context.Context, brokers []string, dialer func() (*kafka.Dialer, error), topic string, start startAt,
	f tailFlags, filter alertFilter, out io.Writer) error {
	d, err := dialer()
	if err != nil {
		return err
	}
	conn, err := d.DialContext(ctx, "tcp", brokers[0])
	if err != nil {
		return fmt.Errorf("cannot reach Kafka at %s: %w", brokers[0], err)
	}
	parts, err := conn.ReadPartitions(topic)
	conn.Close()
	if err != nil {
		return fmt.Errorf("cannot read the partitions of %s: %w (create the topics with `atlas topology apply`)", topic, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	type item struct {
		msg kafka.Message
		a   *schemas.Alert
	}
	items := make(chan item, 256)
	errs := make(chan error, len(parts))
	var wg sync.WaitGroup
	for _, p := range parts {
		wg.Add(1)
		go func(partition int) {
			defer wg.Done()
			// MinBytes 1: the broker answers a fetch as soon as an alert
			// is appended. kafka-go also takes MaxWait as the read
			// deadline, and a response after it costs a reconnect and a
			// 100 ms backoff, so MaxWait is long rather than short.
			r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Dialer: d, Topic: topic, Partition: partition,
				MinBytes: 1, MaxBytes: 1 << 20, MaxWait: time.Second})
			defer r.Close()
			var err error
			if start.at.IsZero() {
				err = r.SetOffset(start.offset)
			} else {
				err = r.SetOffsetAt(ctx, start.at)
			}
			if err != nil {
				errs <- fmt.Errorf("cannot position the reader of %s/%d: %w", topic, partition, err)
				return
			}
			// Without --follow, stop at the end of the partition as it is now.
			end := int64(-1)
			if !f.follow {
				lctx, lcancel := context.WithTimeout(ctx, 10*time.Second)
				first, last, err := partitionBounds(lctx, d, brokers[0], topic, partition)
				lcancel()
				if err != nil {
					errs <- err
					return
				}
				if first >= last || (start.at.IsZero() && start.offset == kafka.LastOffset) ||
					(!start.at.IsZero() && r.Offset() >= last) {
					return
				}
				end = last
			}
			for {
				if end >= 0 && r.Offset() >= end {
					return
				}
				m, err := r.FetchMessage(ctx)
				if err != nil {
					if ctx.Err() == nil {
						errs <- fmt.Errorf("cannot read %s/%d: %w", topic, partition, err)
					}
					return
				}
				var a schemas.Alert
				if err := schemas.DecodeAlert(m.Value, &a); err != nil {
					slog.Warn("skipping a record that is not an alert", "partition", partition, "offset", m.Offset, "err", err)
				} else {
					select {
					case items <- item{m, &a}:
					case <-ctx.Done():
						return
					}
				}
				if end >= 0 && m.Offset+1 >= end {
					return
				}
			}
		}(p.ID)
	}
	go func() { wg.Wait(); close(items) }()

	type seenKey struct {
		id  string
		st  schemas.AlertStatus
		sev schemas.Severity
	}
	seen := map[seenKey]bool{}
	printed := 0
	enc := json.NewEncoder(out)
	for {
		select {
		case err := <-errs:
			cancel()
			return err
		case it, ok := <-items:
			if !ok {
				select {
				case err := <-errs:
					return err
				default:
				}
				return nil
			}
			a := it.a
			if !filter.keep(a) {
				continue
			}
			k := seenKey{a.ID, a.Status, a.Severity}
			if !f.all {
				if seen[k] {
					continue
				}
				if len(seen) > 1_000_000 {
					clear(seen) // bound memory on a long tail
				}
				seen[k] = true
			}
			if f.json {
				if err := enc.Encode(alertJSON{Alert: a, SeverityName: severityName(a.Severity),
					DetectedTime: time.UnixMilli(a.DetectedAt).UTC().Format(time.RFC3339Nano),
					FirstTime:    time.UnixMilli(a.FirstSeen).UTC().Format(time.RFC3339Nano),
					Partition:    it.msg.Partition, Offset: it.msg.Offset}); err != nil {
					return err
				}
			} else if _, err := fmt.Fprintln(out, alertLine(a)); err != nil {
				return err
			}
			printed++
			if f.limit > 0 && printed >= f.limit {
				return nil
			}
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.Canceled) {
				return nil
			}
			return ctx.Err()
		}
	}
}

// partitionBounds returns the first offset of a partition and the offset
// after its last record.
func partitionBounds(ctx context.Context, d *kafka.Dialer, broker, topic string, partition int) (int64, int64, error) {
	conn, err := d.DialLeader(ctx, "tcp", broker, topic, partition)
	if err != nil {
		return 0, 0, fmt.Errorf("cannot reach the leader of %s/%d: %w", topic, partition, err)
	}
	defer conn.Close()
	first, last, err := conn.ReadOffsets()
	if err != nil {
		return 0, 0, fmt.Errorf("cannot read the offsets of %s/%d: %w", topic, partition, err)
	}
	return first, last, nil
}
