package topology

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
)

// Status is what [Apply] found or did for one topic.
type Status string

// The statuses of a topic in a [Report].
const (
	// Created: the topic was missing and Apply created it as declared.
	Created Status = "created"
	// OK: the topic exists as declared.
	OK Status = "ok"
	// Drifted: the topic exists but differs from the declaration; Apply
	// left it as it is.
	Drifted Status = "drift"
	// Missing: the topic does not exist; only [Check] reports it (Apply
	// creates it).
	Missing Status = "missing"
)

// Drift is one setting of an existing topic that differs from the
// declaration.
type Drift struct {
	// Topic is the name on the cluster.
	Topic string
	// Setting is "partitions", "replication factor" or a topic config name
	// such as "cleanup.policy" or "retention.ms".
	Setting string
	// Declared and Cluster are the values in the declaration and on the
	// cluster, formatted for people ("7d", "compact").
	Declared, Cluster string
}

// String formats the drift as "partitions 6 declared, 8 on cluster".
func (d Drift) String() string {
	return fmt.Sprintf("%s %s declared, %s on cluster", d.Setting, d.Declared, d.Cluster)
}

// TopicResult is the outcome of [Apply] for one declared topic.
type TopicResult struct {
	// Topic is the name on the cluster.
	Topic  string
	Status Status
	// Spec is the declaration.
	Spec TopicSpec
	// Drift lists the differences when Status is Drifted.
	Drift []Drift
}

// String formats the result as one line, e.g.
// "drift    atlas.playback.v1: partitions 6 declared, 8 on cluster".
func (r TopicResult) String() string {
	switch r.Status {
	case Created:
		return fmt.Sprintf("%-8s %s (%s)", r.Status, r.Topic, describe(r.Spec))
	case Drifted:
		parts := make([]string, len(r.Drift))
		for i, d := range r.Drift {
			parts[i] = d.String()
		}
		return fmt.Sprintf("%-8s %s: %s; left unchanged", r.Status, r.Topic, strings.Join(parts, ", "))
	case "":
		return fmt.Sprintf("%-8s %s (an error stopped Apply before it)", "unknown", r.Topic)
	default:
		return fmt.Sprintf("%-8s %s", r.Status, r.Topic)
	}
}

// Report is what [Apply] did, one entry per declared topic in declaration
// order.
type Report struct {
	// Cluster is the cluster id that the broker reported.
	Cluster string
	Topics  []TopicResult
}

// Changed reports whether Apply changed the cluster, that is created a topic.
// Drift is not a change: Apply never alters an existing topic.
func (r Report) Changed() bool {
	for _, t := range r.Topics {
		if t.Status == Created {
			return true
		}
	}
	return false
}

// Drift returns every difference between the declaration and the cluster.
func (r Report) Drift() []Drift {
	var all []Drift
	for _, t := range r.Topics {
		all = append(all, t.Drift...)
	}
	return all
}

// String formats the report: a summary line, then one line per topic.
func (r Report) String() string {
	counts := map[Status]int{}
	for _, t := range r.Topics {
		counts[t.Status]++
	}
	var b strings.Builder
	fmt.Fprintf(&b, "cluster %s: %s, %d created, %d ok, %d drifted", r.Cluster, plural(len(r.Topics), "topic"), counts[Created], counts[OK], counts[Drifted])
	if counts[Missing] > 0 {
		fmt.Fprintf(&b, ", %d missing", counts[Missing])
	}
	if !r.Changed() {
		b.WriteString(", nothing changed")
	}
	b.WriteByte('\n')
	for _, t := range r.Topics {
		b.WriteString(t.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// visibleTimeout bounds how long Apply waits for a topic that another client
// created at the same time to show up in the broker's metadata.
const visibleTimeout = 10 * time.Second

// Apply makes the cluster that client talks to have every topic of t: it
// creates the missing ones with their partitions, replication factor and
// configs (cleanup.policy, retention.ms when the policy deletes,
// min.insync.replicas when the replication factor is above 1), and compares
// the existing ones with the declaration. It never changes or deletes an
// existing topic: differences come back as drift in the report, for a person
// to resolve. Applying the same topology twice creates nothing the second
// time.
//
// Apply validates t first. It blocks until the broker has answered or ctx
// is done; the broker is given half of client.Timeout (kafka-go's rule) or
// 2 s to create topics. On an error the report holds what was done before it.
// A topic that another client creates concurrently is reported as existing.
func Apply(ctx context.Context, client *kafka.Client, t Topology) (Report, error) {
	return reconcile(ctx, client, t, true)
}

// Check compares the cluster with t like [Apply] but changes nothing:
// topics that do not exist are reported as Missing. `atlas doctor` uses it.
func Check(ctx context.Context, client *kafka.Client, t Topology) (Report, error) {
	return reconcile(ctx, client, t, false)
}

func reconcile(ctx context.Context, client *kafka.Client, t Topology, create bool) (Report, error) {
	if err := t.Validate(); err != nil {
		return Report{}, fmt.Errorf("cannot apply an invalid topology: %w", err)
	}
	names := make([]string, len(t.Topics))
	for i, s := range t.Topics {
		names[i] = t.Name(s.Name)
	}
	clusterID, found, err := describeTopics(ctx, client, names)
	if err != nil {
		return Report{}, err
	}
	report := Report{Cluster: clusterID, Topics: make([]TopicResult, len(t.Topics))}
	for i, s := range t.Topics {
		report.Topics[i] = TopicResult{Topic: names[i], Spec: s}
	}

	var missing []kafka.TopicConfig
	for i, s := range t.Topics {
		if _, ok := found[names[i]]; !ok {
			missing = append(missing, topicConfig(names[i], s))
			if !create {
				report.Topics[i].Status = Missing
			}
		}
	}
	if len(missing) > 0 && create {
		res, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: missing})
		if err != nil {
			return report, fmt.Errorf("cannot create topics: %w", err)
		}
		var errs []error
		var raced []string
		for _, c := range missing {
			switch err := res.Errors[c.Topic]; {
			case err == nil:
				report.Topics[slices.Index(names, c.Topic)].Status = Created
			case errors.Is(err, kafka.TopicAlreadyExists):
				raced = append(raced, c.Topic)
			default:
				errs = append(errs, fmt.Errorf("cannot create topic %q: %w", c.Topic, err))
			}
		}
		if len(errs) > 0 {
			return report, errors.Join(errs...)
		}
		if len(raced) > 0 {
			if err := waitVisible(ctx, client, raced, found); err != nil {
				return report, err
			}
		}
	}

	var existing []string
	for _, r := range report.Topics {
		if r.Status != Created && r.Status != Missing {
			existing = append(existing, r.Topic)
		}
	}
	configs, err := describeConfigs(ctx, client, existing)
	if err != nil {
		return report, err
	}
	for i := range report.Topics {
		r := &report.Topics[i]
		if r.Status == Created || r.Status == Missing {
			continue
		}
		got := found[r.Topic]
		got.configs = configs[r.Topic]
		r.Drift = diff(r.Topic, r.Spec, got)
		r.Status = OK
		if len(r.Drift) > 0 {
			r.Status = Drifted
		}
	}
	return report, nil
}

// observed is an existing topic as the cluster describes it.
type observed struct {
	partitions        int
	replicationFactor int
	configs           map[string]string
}

// Topic configs that Apply sets and compares.
const (
	configCleanup   = "cleanup.policy"
	configRetention = "retention.ms"
	configMinISR    = "min.insync.replicas"
)

func topicConfig(name string, s TopicSpec) kafka.TopicConfig {
	c := kafka.TopicConfig{
		Topic:             name,
		NumPartitions:     s.Partitions,
		ReplicationFactor: s.ReplicationFactor,
		ConfigEntries:     []kafka.ConfigEntry{{ConfigName: configCleanup, ConfigValue: string(s.Cleanup)}},
	}
	if s.Cleanup.deletes() {
		c.ConfigEntries = append(c.ConfigEntries, kafka.ConfigEntry{ConfigName: configRetention, ConfigValue: strconv.FormatInt(s.Retention.Milliseconds(), 10)})
	}
	if s.ReplicationFactor > 1 && s.MinInsyncReplicas > 0 {
		c.ConfigEntries = append(c.ConfigEntries, kafka.ConfigEntry{ConfigName: configMinISR, ConfigValue: strconv.Itoa(s.MinInsyncReplicas)})
	}
	return c
}

// diff compares an existing topic with its declaration; settings that the
// declaration leaves to the broker are not compared.
func diff(name string, s TopicSpec, got observed) []Drift {
	var drift []Drift
	add := func(setting, declared, cluster string) {
		drift = append(drift, Drift{Topic: name, Setting: setting, Declared: declared, Cluster: cluster})
	}
	if got.partitions != s.Partitions {
		add("partitions", strconv.Itoa(s.Partitions), strconv.Itoa(got.partitions))
	}
	if got.replicationFactor != s.ReplicationFactor {
		add("replication factor", strconv.Itoa(s.ReplicationFactor), strconv.Itoa(got.replicationFactor))
	}
	if cluster := got.configs[configCleanup]; normalizeCleanup(cluster) != normalizeCleanup(string(s.Cleanup)) {
		add(configCleanup, string(s.Cleanup), orUnknown(cluster))
	}
	if s.Cleanup.deletes() {
		want := strconv.FormatInt(s.Retention.Milliseconds(), 10)
		if cluster := got.configs[configRetention]; cluster != want {
			add(configRetention, formatRetention(s.Retention), formatRetentionMs(cluster))
		}
	}
	if s.ReplicationFactor > 1 && s.MinInsyncReplicas > 0 {
		want := strconv.Itoa(s.MinInsyncReplicas)
		if cluster := got.configs[configMinISR]; cluster != want {
			add(configMinISR, want, orUnknown(cluster))
		}
	}
	return drift
}

// normalizeCleanup makes "delete,compact" and "compact, delete" equal.
func normalizeCleanup(v string) string {
	parts := strings.Split(v, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

// plural formats a count of things: "1 topic", "7 topics".
func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return strconv.Itoa(n) + " " + thing + "s"
}

func orUnknown(v string) string {
	if v == "" {
		return "(unknown)"
	}
	return v
}

// describeTopics returns the cluster id and the topics among names that
// exist.
func describeTopics(ctx context.Context, client *kafka.Client, names []string) (string, map[string]observed, error) {
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: names})
	if err != nil {
		return "", nil, fmt.Errorf("cannot read cluster metadata: %w", err)
	}
	found := make(map[string]observed, len(names))
	for _, topic := range meta.Topics {
		switch {
		case errors.Is(topic.Error, kafka.UnknownTopicOrPartition):
			continue
		case topic.Error != nil:
			return "", nil, fmt.Errorf("cannot read metadata of topic %q: %w", topic.Name, topic.Error)
		case !slices.Contains(names, topic.Name):
			continue
		}
		o := observed{partitions: len(topic.Partitions)}
		for _, p := range topic.Partitions {
			o.replicationFactor = max(o.replicationFactor, len(p.Replicas))
		}
		found[topic.Name] = o
	}
	return meta.ClusterID, found, nil
}

// waitVisible waits until the broker's metadata lists every topic in names
// and adds them to found. A topic that was just created elsewhere can be
// missing from a broker's metadata for a moment.
func waitVisible(ctx context.Context, client *kafka.Client, names []string, found map[string]observed) error {
	ctx, cancel := context.WithTimeout(ctx, visibleTimeout)
	defer cancel()
	for {
		_, seen, err := describeTopics(ctx, client, names)
		if err != nil {
			return err
		}
		if len(seen) == len(names) {
			for name, o := range seen {
				found[name] = o
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cannot see topics %v, which the broker says exist: %w", names, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// describeConfigs returns the configs that Apply compares, per topic.
func describeConfigs(ctx context.Context, client *kafka.Client, names []string) (map[string]map[string]string, error) {
	if len(names) == 0 {
		return nil, nil
	}
	resources := make([]kafka.DescribeConfigRequestResource, len(names))
	for i, name := range names {
		resources[i] = kafka.DescribeConfigRequestResource{
			ResourceType: kafka.ResourceTypeTopic,
			ResourceName: name,
			ConfigNames:  []string{configCleanup, configRetention, configMinISR},
		}
	}
	res, err := client.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{Resources: resources})
	if err != nil {
		return nil, fmt.Errorf("cannot describe topic configs: %w", err)
	}
	configs := make(map[string]map[string]string, len(names))
	for _, r := range res.Resources {
		if r.Error != nil {
			return nil, fmt.Errorf("cannot describe the configs of topic %q: %w", r.ResourceName, r.Error)
		}
		m := make(map[string]string, len(r.ConfigEntries))
		for _, e := range r.ConfigEntries {
			m[e.ConfigName] = e.ConfigValue
		}
		configs[r.ResourceName] = m
	}
	return configs, nil
}

// describe formats a declaration as "6 partitions, rf 1, delete, retention 7d".
func describe(s TopicSpec) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s, rf %d, %s", partitions(s.Partitions), s.ReplicationFactor, s.Cleanup)
	if s.Cleanup.deletes() {
		fmt.Fprintf(&b, ", retention %s", formatRetention(s.Retention))
	}
	if s.ReplicationFactor > 1 && s.MinInsyncReplicas > 0 {
		fmt.Fprintf(&b, ", min.insync.replicas %d", s.MinInsyncReplicas)
	}
	return b.String()
}

// formatRetention writes a retention in the largest whole unit: "7d", "12h",
// "90m", else Go's duration format.
func formatRetention(d time.Duration) string {
	switch {
	case d == 0:
		return "-"
	case d%day == 0:
		return strconv.FormatInt(int64(d/day), 10) + "d"
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	default:
		return d.String()
	}
}

// formatRetentionMs formats a retention.ms value from the cluster; -1 is
// Kafka's "forever".
func formatRetentionMs(v string) string {
	ms, err := strconv.ParseInt(v, 10, 64)
	switch {
	case err != nil:
		return orUnknown(v)
	case ms < 0:
		return "forever"
	default:
		return formatRetention(time.Duration(ms) * time.Millisecond)
	}
}
