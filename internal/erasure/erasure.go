// Package erasure is `atlas erase-profile`: it removes what Atlas keeps
// about one profile (and, on request, its account) from the places Atlas
// owns and reads from, and says plainly what it cannot remove.
//
// # What it removes
//
//   - Embeddings state and recommendations: the member of the embeddings
//     role that owns the profile's partition is asked (DELETE
//     /v1/profiles/{id} on its API, forwarded to the owner) to drop the
//     profile from memory and write a tombstone for it to the state
//     changelog (atlas.embeddings.state.v1, compacted, key = profile id);
//     its recommendations are then the cold-start ones. The tombstone is
//     also written directly, so the changelog has it when no member runs.
//   - ClickHouse, as the admin user, with ALTER TABLE … mutations that it
//     waits for: the profile's rows of late_events (DELETE); its id in the
//     evidence of alerts (bot alerts name the profile; UPDATE to
//     "(erased)"); its 64-bit hash among the distinct viewers of
//     playback_minute (UPDATE, viewers recounted), which is what the
//     roll-up views count. With an account id, the alerts whose subject is
//     that account (DELETE).
//
// # What it does not remove
//
//   - The input topics (atlas.playback.v1, atlas.browse.v1) keep the raw
//     events until their retention (7 days) deletes the segments; the
//     dead-letter topic keeps refused records for 14 days, the alert topic
//     alerts for 30. Kafka cannot delete single records from them.
//   - A replay of the input topics from the earliest offset (or a consumer
//     that has not caught up yet) rebuilds the profile's state and writes
//     its rows again: erase after the roles caught up, and again after a
//     replay within the input retention.
//   - The changelog's older records of the profile stay on the broker's
//     disk until the log cleaner compacts their segment; the tombstone
//     itself is kept for delete.retention.ms (1 day by default).
//   - Aggregates without a profile in them (starts, watch time per title
//     and minute) and the title model, which sums what every profile
//     taught it, are not personal data and stay.
//
// # Retention of the ClickHouse tables
//
// Every table that grows with traffic is partitioned by day: the minute
// tables and late_events by toYYYYMMDD(window_start), alerts by
// toDate(first_seen). 18.16 has no TTL, so old days are dropped by command,
// daily, as the admin user: `atlas clickhouse drop-partitions --older-than
// 90d` (schemas/warehouse.DropPartitions) drops every day older than the
// retention the operator chose. It refuses to keep fewer days than the
// input topics hold plus one: a replay of a dropped day would write part of
// it again. titles is small and never dropped.
package erasure

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/segmentio/kafka-go"

	"github.com/atlas-stream/atlas/internal/kafkaconn"
	"github.com/atlas-stream/atlas/producers/player"
)

// Config says where the profile's data lives. Zero fields take the
// documented defaults.
type Config struct {
	// ClickHouse is a connection as a user that may run ALTER TABLE
	// mutations (the admin user; the writer has allow_ddl = 0). Required.
	ClickHouse driver.Conn
	// Database is the Atlas database. Required.
	Database string
	// Kafka reaches the brokers. PlaybackTopic (whose partitioning places
	// a profile) and StateTopic (the embeddings state changelog) are names
	// as on the cluster. Required.
	Kafka                     kafkaconn.Config
	PlaybackTopic, StateTopic string
	// EmbeddingsAPI is host:port of a member of the running embeddings
	// role; "" when the role does not run. When set and no member
	// confirms, Erase still erases the rest and returns ErrIncomplete.
	EmbeddingsAPI string
	// HTTP asks the embeddings API. Default: a client with a 10 s timeout.
	HTTP *http.Client
	// MutationTimeout bounds the wait for each ClickHouse mutation.
	// Default 5 minutes.
	MutationTimeout time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// ErrIncomplete is returned (wrapped, with the reason) when Erase did all
// it could but one part could not be confirmed; the caller should retry
// once the cause is fixed. Erase is idempotent.
var ErrIncomplete = errors.New("erasure incomplete")

// Report says what Erase did.
type Report struct {
	Profile   string
	Account   string
	Partition int // the profile's partition of the playback and state topics
	// Embeddings is what the embeddings role answered ("" when not asked).
	Embeddings string
	// Tombstone names the changelog partition the tombstone was written to.
	Tombstone string
	// Steps are the ClickHouse mutations, with the rows they matched.
	Steps []Step
}

// Step is one ClickHouse mutation.
type Step struct {
	Table string
	What  string
	Rows  uint64 // rows matched before the mutation (0: nothing to do, no mutation run)
}

// ProfileHash is the 64-bit hash under which the aggregates role stores a
// profile among a row's distinct viewers: FNV-1a 64 of the id, as
// consumers/aggregates computes it.
func ProfileHash(id string) uint64 {
	h := fnv.New64a()
	io.WriteString(h, id)
	return h.Sum64()
}

// Erase removes the profile's data (and the account's alerts when account
// is not ""); see the package doc. It returns the report of what was done
// so far, also with an error.
func Erase(ctx context.Context, cfg Config, profile, account string) (*Report, error) {
	switch {
	case profile == "":
		return nil, errors.New("cannot erase: the profile id is empty")
	case cfg.ClickHouse == nil || cfg.Database == "" || cfg.PlaybackTopic == "" || cfg.StateTopic == "":
		return nil, errors.New("BUG: erasure.Config needs ClickHouse, Database, PlaybackTopic and StateTopic")
	}
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.MutationTimeout == 0 {
		cfg.MutationTimeout = 5 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	rep := &Report{Profile: profile, Account: account}
	n, err := partitions(ctx, cfg.Kafka, cfg.PlaybackTopic)
	if err != nil {
		return rep, err
	}
	rep.Partition = player.Partition(profile, n)

	// The owner first: it drops the profile and writes the tombstone in
	// order with its own writes.
	var incomplete error
	if cfg.EmbeddingsAPI != "" {
		rep.Embeddings, incomplete = askEmbeddings(ctx, cfg, profile)
	} else {
		rep.Embeddings = "not asked (no embeddings API given)"
	}
	if err := tombstone(ctx, cfg, profile, rep.Partition); err != nil {
		return rep, err
	}
	rep.Tombstone = fmt.Sprintf("%s/%d", cfg.StateTopic, rep.Partition)

	h := ProfileHash(profile)
	needle, _ := json.Marshal(map[string]string{"profile": profile})
	mention := strings.TrimSuffix(strings.TrimPrefix(string(needle), "{"), "}") // "profile":"<id>", as alertsink writes it
	erased, _ := json.Marshal(map[string]string{"profile": "(erased)"})
	redacted := strings.TrimSuffix(strings.TrimPrefix(string(erased), "{"), "}")
	db := cfg.Database
	steps := []mutation{
		{Step: Step{Table: "late_events", What: "late events of the profile deleted"},
			where: "profile_id = ?", args: []any{profile}, apply: "DELETE"},
		{Step: Step{Table: "alerts", What: "alerts whose evidence names the profile: redacted"},
			where: "position(evidence, ?) > 0", args: []any{mention},
			apply: "UPDATE evidence = replaceAll(evidence, ?, ?)", applyArgs: []any{mention, redacted}},
		{Step: Step{Table: "playback_minute", What: "minutes with the profile among the distinct viewers: its hash removed"},
			where: "has(viewer_hashes, ?)", args: []any{h},
			// viewers is recounted from the filtered array: "viewers - 1"
			// is signed, and 18.16 finds no common type with the column.
			apply:     "UPDATE viewer_hashes = arrayFilter(x -> x != ?, viewer_hashes), viewers = toUInt64(length(arrayFilter(x -> x != ?, viewer_hashes)))",
			applyArgs: []any{h, h}},
	}
	if account != "" {
		steps = append(steps, mutation{Step: Step{Table: "alerts", What: "alerts about the account deleted"},
			where: "subject = ?", args: []any{"account:" + account}, apply: "DELETE"})
	}
	for _, m := range steps {
		if err := m.run(ctx, cfg, db); err != nil {
			return rep, err
		}
		rep.Steps = append(rep.Steps, m.Step)
	}
	return rep, incomplete
}

// mutation is one ALTER TABLE … DELETE or UPDATE with its WHERE clause.
type mutation struct {
	Step
	where     string
	args      []any
	apply     string // "DELETE" or "UPDATE …" (without WHERE)
	applyArgs []any
}

func (m *mutation) run(ctx context.Context, cfg Config, db string) error {
	table := db + "." + m.Table
	row := cfg.ClickHouse.QueryRow(ctx, "SELECT count() FROM "+table+" WHERE "+m.where, m.args...)
	if err := row.Scan(&m.Rows); err != nil {
		return fmt.Errorf("cannot count the rows to erase in %s: %w", table, err)
	}
	if m.Rows == 0 {
		return nil
	}
	q := "ALTER TABLE " + table + " DELETE WHERE " + m.where
	if m.apply != "DELETE" {
		q = "ALTER TABLE " + table + " " + m.apply + " WHERE " + m.where
	}
	if err := cfg.ClickHouse.Exec(ctx, q, append(append([]any(nil), m.applyArgs...), m.args...)...); err != nil {
		return fmt.Errorf("cannot erase from %s: %w", table, err)
	}
	return waitMutations(ctx, cfg, db, m.Table)
}

// waitMutations waits until no mutation of the table is pending: ALTER
// TABLE … DELETE/UPDATE only schedules the rewrite of the parts.
func waitMutations(ctx context.Context, cfg Config, db, table string) error {
	ctx, cancel := context.WithTimeout(ctx, cfg.MutationTimeout)
	defer cancel()
	for {
		var pending uint64
		if err := cfg.ClickHouse.QueryRow(ctx, "SELECT count() FROM system.mutations WHERE database = ? AND table = ? AND is_done = 0",
			db, table).Scan(&pending); err != nil {
			return fmt.Errorf("cannot read the mutations of %s.%s: %w", db, table, err)
		}
		if pending == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cannot erase from %s.%s: %d mutations still pending after %s (system.mutations says which)",
				db, table, pending, cfg.MutationTimeout)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// askEmbeddings sends DELETE /v1/profiles/{id} to the embeddings API. A
// non-nil error wraps ErrIncomplete.
func askEmbeddings(ctx context.Context, cfg Config, profile string) (string, error) {
	u := "http://" + cfg.EmbeddingsAPI + "/v1/profiles/" + url.PathEscape(profile)
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, u, nil)
	if err != nil {
		return "", fmt.Errorf("%w: cannot ask the embeddings role: %v", ErrIncomplete, err)
	}
	res, err := cfg.HTTP.Do(req)
	if err != nil {
		return "no answer", fmt.Errorf("%w: no embeddings member answered at %s (%v): if the role runs, its memory may still hold the profile; run again with --embeddings-api pointing at a member, or with --embeddings-api \"\" if the role does not run", ErrIncomplete, cfg.EmbeddingsAPI, err)
	}
	defer res.Body.Close()
	var body struct {
		ServedBy string `json:"served_by"`
		Found    bool   `json:"found"`
		Erased   bool   `json:"erased"`
		Error    string `json:"error"`
	}
	_ = json.NewDecoder(io.LimitReader(res.Body, 64<<10)).Decode(&body)
	if res.StatusCode != http.StatusOK || !body.Erased {
		return res.Status, fmt.Errorf("%w: the embeddings role answered %s: %s", ErrIncomplete, res.Status, body.Error)
	}
	if body.Found {
		return "member " + body.ServedBy + " dropped the profile and wrote its tombstone", nil
	}
	return "member " + body.ServedBy + " did not hold the profile; it wrote a tombstone anyway", nil
}

// tombstone writes the profile's key with a null value to its partition of
// the state changelog and waits for all in-sync replicas.
func tombstone(ctx context.Context, cfg Config, profile string, partition int) error {
	transport, err := cfg.Kafka.Transport()
	if err != nil {
		return err
	}
	w := &kafka.Writer{Addr: kafka.TCP(cfg.Kafka.BrokerList()...), Topic: cfg.StateTopic, Transport: transport,
		Balancer:     kafka.BalancerFunc(func(m kafka.Message, _ ...int) int { return m.Partition }),
		RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond, MaxAttempts: 5}
	defer w.Close()
	if err := w.WriteMessages(ctx, kafka.Message{Key: []byte(profile), Value: nil, Partition: partition}); err != nil {
		return fmt.Errorf("cannot write the tombstone of the profile to %s/%d: %w", cfg.StateTopic, partition, err)
	}
	return nil
}

// partitions returns the partition count of a topic.
func partitions(ctx context.Context, kc kafkaconn.Config, topic string) (int, error) {
	client, err := kc.Client()
	if err != nil {
		return 0, err
	}
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return 0, fmt.Errorf("cannot read the partitions of %s: %w", topic, err)
	}
	if len(md.Topics) != 1 || md.Topics[0].Error != nil || len(md.Topics[0].Partitions) == 0 {
		var terr error
		if len(md.Topics) == 1 {
			terr = md.Topics[0].Error
		}
		return 0, fmt.Errorf("cannot read the partitions of %s (run atlas topology apply): %v", topic, terr)
	}
	return len(md.Topics[0].Partitions), nil
}
