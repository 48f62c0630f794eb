// Package topology is the one declaration of Atlas's Kafka topics (partitions,
// cleanup policy, retention, key), consumer groups and which role reads and
// writes what. `atlas topology apply` reconciles a cluster to it ([Apply]),
// `atlas topology show` draws it ([WriteTable], [WriteMermaid]), and the
// consumer runtime and the tests read the same value, so a topic name or a
// partition count is written down exactly once.
//
// A [Topology] is plain data: build it with [Default], check it with
// [Topology.Validate]. Names in it are logical ([Playback], [AggregatesGroup]);
// [Topology.Name] and [Topology.GroupID] give the names on the cluster, which
// carry [Topology.Prefix] so that test runs and environments sharing one
// cluster do not collide.
//
// The model follows goka's group graph: a consuming role reads co-partitioned
// input streams, looks up global tables that every member reads in full, keeps
// its state in a compacted changelog that is co-partitioned with its inputs,
// and writes output topics and sinks that are not topics (ClickHouse tables).
package topology

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Topic is the logical name of a Kafka topic, as declared; see
// [Topology.Name] for the name on the cluster.
type Topic string

// Group is the logical name of a Kafka consumer group; see
// [Topology.GroupID] for the group id on the cluster.
type Group string

// Role is the name of one part of Atlas: a producer, a loader or a consuming
// processor. Each is a subcommand of the atlas binary.
type Role string

// Cleanup is a Kafka cleanup.policy.
type Cleanup string

// The cleanup policies that Kafka knows.
const (
	// CleanupDelete drops whole segments older than the retention.
	CleanupDelete Cleanup = "delete"
	// CleanupCompact keeps the newest record of each key; records need keys.
	CleanupCompact Cleanup = "compact"
	// CleanupCompactDelete compacts and also drops segments older than the
	// retention.
	CleanupCompactDelete Cleanup = "compact,delete"
)

// deletes reports whether the policy drops old segments, so that a retention
// applies.
func (c Cleanup) deletes() bool { return c == CleanupDelete || c == CleanupCompactDelete }

// compacts reports whether the policy keeps the newest record per key.
func (c Cleanup) compacts() bool { return c == CleanupCompact || c == CleanupCompactDelete }

func (c Cleanup) valid() bool { return c.deletes() || c.compacts() }

// TopicSpec declares one topic.
type TopicSpec struct {
	// Name is the logical name; the cluster name is [Topology.Name] of it.
	Name Topic
	// Partitions is the number of partitions; it must be positive. Topics
	// that a role reads together must have the same count.
	Partitions int
	// ReplicationFactor is the number of replicas of each partition; it
	// must be positive and no larger than the number of brokers.
	ReplicationFactor int
	// MinInsyncReplicas is min.insync.replicas; 0 leaves the broker default.
	// [Apply] sets it only when ReplicationFactor is above 1.
	MinInsyncReplicas int
	// Cleanup is the cleanup.policy.
	Cleanup Cleanup
	// Retention is retention.ms. It is required (positive) when Cleanup
	// deletes, and must be 0 for a compact-only topic, where Kafka does not
	// apply it.
	Retention time.Duration
	// Key says what the record key is ("profile id"); required for
	// compacted topics, whose records without a key the broker rejects.
	Key string
	// Doc is one line about what the topic carries.
	Doc string
}

// RoleSpec declares one role: what it reads, what it writes and, for a
// consuming role, its consumer group.
type RoleSpec struct {
	// Name is the role's name, the atlas subcommand that runs it.
	Name Role
	// Group is the consumer group of a consuming role; empty for producers
	// and loaders, which read no topic.
	Group Group
	// Reads are the input streams. They are co-partitioned: partition p of
	// each is owned by the same member, next to that member's state.
	Reads []Topic
	// Tables are global tables: compacted topics that every member reads in
	// full, whatever partitions it owns.
	Tables []Topic
	// Changelog is the compacted topic that backs the role's per-key state,
	// co-partitioned with Reads; empty when the role keeps no state.
	Changelog Topic
	// Writes are the topics the role produces to (not Changelog).
	Writes []Topic
	// Sinks are outputs that are not Kafka topics, such as
	// "clickhouse:alerts"; they are only drawn, never checked.
	Sinks []string
	// Doc is one line about what the role does.
	Doc string
}

// consumes reports whether the role reads topics through a consumer group.
func (r RoleSpec) consumes() bool { return r.Group != "" }

// Topology is the whole declaration. The zero value is empty and valid; use
// [Default] for Atlas's own. It is plain data and safe to share between
// goroutines as long as nobody modifies it.
type Topology struct {
	// Prefix is put in front of every topic name and group id on the
	// cluster, e.g. "test-4f2a." for one test run or "staging." for an
	// environment that shares a cluster. Empty in production.
	Prefix string
	// Topics in the order in which they are shown and applied.
	Topics []TopicSpec
	// Roles in the order in which they are shown.
	Roles []RoleSpec
}

// Name returns the name of the topic on the cluster: the prefix and the
// logical name.
func (t Topology) Name(topic Topic) string { return t.Prefix + string(topic) }

// GroupID returns the consumer group id on the cluster: the prefix and the
// logical name.
func (t Topology) GroupID(group Group) string { return t.Prefix + string(group) }

// Topic returns the declaration of the topic with the given logical name.
func (t Topology) Topic(name Topic) (TopicSpec, bool) {
	for _, s := range t.Topics {
		if s.Name == name {
			return s, true
		}
	}
	return TopicSpec{}, false
}

// Role returns the declaration of the named role.
func (t Topology) Role(name Role) (RoleSpec, bool) {
	for _, r := range t.Roles {
		if r.Name == name {
			return r, true
		}
	}
	return RoleSpec{}, false
}

// maxTopicName is the longest topic name Kafka accepts.
const maxTopicName = 249

// Validate reports every problem of the declaration at once (joined with
// errors.Join), or nil. It checks that names are unique and legal on Kafka,
// that partitions and replication factors are positive, that cleanup policies
// are known and retention fits them, that every topic a role uses is declared,
// that topics one role reads together are co-partitioned, that changelogs are
// compacted and co-partitioned with the role's inputs, that global tables are
// compacted, that consumer groups are not shared between roles, and that no
// topic is read without a writer or declared without a user.
func (t Topology) Validate() error {
	var errs []error
	fail := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(format, args...))
	}

	if t.Prefix != "" && !legalTopicChars(t.Prefix) {
		fail("prefix %q: only ASCII letters, digits, '.', '_' and '-' are allowed in topic names", t.Prefix)
	}

	topics := make(map[Topic]TopicSpec, len(t.Topics))
	for _, s := range t.Topics {
		errs = append(errs, t.validateTopic(s)...)
		if _, dup := topics[s.Name]; dup {
			fail("topic %q: declared twice", s.Name)
		}
		topics[s.Name] = s
	}

	roles := make(map[Role]bool, len(t.Roles))
	groups := make(map[Group]Role, len(t.Roles))
	written := make(map[Topic]bool)
	used := make(map[Topic]bool)
	for _, r := range t.Roles {
		if r.Name == "" {
			fail("role with an empty name")
		}
		if roles[r.Name] {
			fail("role %q: declared twice", r.Name)
		}
		roles[r.Name] = true
		if r.Group != "" {
			if other, dup := groups[r.Group]; dup {
				fail("role %q: group %q is already the group of role %q; roles sharing a group would split its partitions between them", r.Name, r.Group, other)
			}
			groups[r.Group] = r.Name
		}
		errs = append(errs, validateRole(r, topics)...)
		for _, name := range r.Writes {
			written[name] = true
			used[name] = true
		}
		if r.Changelog != "" {
			written[r.Changelog] = true
			used[r.Changelog] = true
		}
		for _, name := range r.Reads {
			used[name] = true
		}
		for _, name := range r.Tables {
			used[name] = true
		}
	}

	for _, r := range t.Roles {
		for _, name := range append(append([]Topic(nil), r.Reads...), r.Tables...) {
			if _, ok := topics[name]; ok && !written[name] {
				fail("role %q: reads topic %q, which no role writes", r.Name, name)
			}
		}
	}
	for _, s := range t.Topics {
		if !used[s.Name] {
			fail("topic %q: declared, but no role reads or writes it", s.Name)
		}
	}
	return errors.Join(errs...)
}

func (t Topology) validateTopic(s TopicSpec) []error {
	var errs []error
	fail := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("topic %q: "+format, append([]any{s.Name}, args...)...))
	}
	switch full := t.Name(s.Name); {
	case s.Name == "":
		errs = append(errs, errors.New("topic with an empty name"))
	case !legalTopicChars(string(s.Name)):
		fail("only ASCII letters, digits, '.', '_' and '-' are allowed in topic names")
	case full == "." || full == "..":
		fail("'.' and '..' are not topic names")
	case len(full) > maxTopicName:
		fail("name on the cluster %q is %d characters long; Kafka allows %d", full, len(full), maxTopicName)
	}
	if s.Partitions <= 0 {
		fail("partitions must be positive, got %d", s.Partitions)
	}
	if s.ReplicationFactor <= 0 {
		fail("replication factor must be positive, got %d", s.ReplicationFactor)
	}
	if s.MinInsyncReplicas < 0 || s.MinInsyncReplicas > s.ReplicationFactor {
		fail("min.insync.replicas must be between 0 (broker default) and the replication factor %d, got %d", s.ReplicationFactor, s.MinInsyncReplicas)
	}
	if !s.Cleanup.valid() {
		fail("unknown cleanup policy %q; want %q, %q or %q", s.Cleanup, CleanupDelete, CleanupCompact, CleanupCompactDelete)
	}
	switch {
	case s.Retention < 0:
		fail("retention must not be negative, got %v", s.Retention)
	case s.Cleanup.deletes() && s.Retention == 0:
		fail("cleanup policy %q deletes old records, so it needs a retention", s.Cleanup)
	case s.Cleanup == CleanupCompact && s.Retention != 0:
		fail("retention %v has no effect on a compact-only topic; leave it 0 or use %q", s.Retention, CleanupCompactDelete)
	case s.Retention%time.Millisecond != 0:
		fail("retention %v is not a whole number of milliseconds", s.Retention)
	}
	if s.Cleanup.compacts() && s.Key == "" {
		fail("a compacted topic needs a key; say what it is")
	}
	return errs
}

func validateRole(r RoleSpec, topics map[Topic]TopicSpec) []error {
	var errs []error
	fail := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("role %q: "+format, append([]any{r.Name}, args...)...))
	}
	// A topic appears once on the reading side (input, table or changelog)
	// and once on the writing side (output or changelog). Reading and
	// writing one topic is fine for a table (the embeddings model), not for
	// an input stream: that is a loop.
	read := make(map[Topic]string)
	written := make(map[Topic]string)
	use := func(seen map[Topic]string, how string, name Topic) {
		if name == "" {
			fail("%s a topic with an empty name", how)
			return
		}
		if prev, dup := seen[name]; dup {
			fail("%s topic %q, which it already %s", how, name, prev)
			return
		}
		seen[name] = how
	}
	declared := func(how string, name Topic) {
		if _, ok := topics[name]; name != "" && !ok {
			fail("%s topic %q, which is not declared", how, name)
		}
	}
	for _, name := range r.Reads {
		use(read, "reads", name)
		declared("reads", name)
	}
	for _, name := range r.Tables {
		use(read, "looks up", name)
		declared("looks up", name)
		if s, ok := topics[name]; ok && !s.Cleanup.compacts() {
			fail("looks up topic %q as a global table, but its cleanup policy %q does not compact", name, s.Cleanup)
		}
	}
	if r.Changelog != "" {
		use(read, "keeps its state in", r.Changelog)
		use(written, "keeps its state in", r.Changelog)
		declared("keeps its state in", r.Changelog)
		if s, ok := topics[r.Changelog]; ok && s.Cleanup != CleanupCompact {
			fail("changelog %q must be compact-only so that no state is lost, got cleanup policy %q", r.Changelog, s.Cleanup)
		}
	}
	for _, name := range r.Writes {
		use(written, "writes", name)
		declared("writes", name)
		if slices.Contains(r.Reads, name) {
			fail("writes topic %q, which it reads: a loop", name)
		}
	}
	sinks := make(map[string]bool, len(r.Sinks))
	for _, sink := range r.Sinks {
		if sink == "" {
			fail("has a sink with an empty name")
		}
		if sinks[sink] {
			fail("has sink %q twice", sink)
		}
		sinks[sink] = true
	}

	if r.consumes() {
		if len(r.Reads) == 0 {
			fail("has consumer group %q but reads no topic", r.Group)
		}
	} else {
		if len(r.Reads) > 0 || len(r.Tables) > 0 || r.Changelog != "" {
			fail("reads topics but has no consumer group")
		}
		if len(r.Writes) == 0 && len(r.Sinks) == 0 {
			fail("neither reads nor writes anything")
		}
	}

	// Co-partitioning: every input, and the changelog, has as many
	// partitions as the first input, so that one member owns partition p of
	// each along with the state of the keys in it.
	if len(r.Reads) > 0 {
		first, ok := topics[r.Reads[0]]
		if ok {
			together := append(append([]Topic(nil), r.Reads[1:]...), r.Changelog)
			for _, name := range together {
				s, ok := topics[name]
				if !ok || s.Partitions == first.Partitions {
					continue
				}
				what := "reads"
				if name == r.Changelog {
					what = "keeps its state in"
				}
				fail("%s topic %q with %s, but topic %q has %d; topics of one role must be co-partitioned", what, name, partitions(s.Partitions), first.Name, first.Partitions)
			}
		}
	}
	return errs
}

// legalTopicChars reports whether s is made of the characters Kafka allows
// in topic names.
func legalTopicChars(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}
