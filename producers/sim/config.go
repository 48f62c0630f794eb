package sim

import (
	"errors"
	"fmt"
	"time"

	"github.com/atlas-stream/atlas/internal/eventtime"
	"github.com/atlas-stream/atlas/topology"
)

// DefaultEpoch is where simulated time starts unless Config.Epoch says
// otherwise: a Monday, 00:00 UTC. It is a constant, never the wall clock, so
// that a seed alone fixes every event time.
var DefaultEpoch = time.Date(2026, time.November, 2, 0, 0, 0, 0, time.UTC)

// Config describes one simulation. Fields marked "zero means default" take
// the documented default when left zero; the rates are used as given (zero
// disables an injection), so start from [DefaultConfig] to get the defaults.
type Config struct {
	// Seed fixes everything: the same Config gives byte-identical events
	// and ground truth.
	Seed uint64
	// Epoch is the simulated time of the first event. Zero means
	// DefaultEpoch.
	Epoch time.Time
	// Events is how many records to send to the event topics (playback and
	// browse), duplicates included; the catalog is not counted. Zero means
	// no limit: then Span must be set.
	Events int64
	// Span bounds simulated time: no event is sent with a send time at or
	// after Epoch+Span. Zero means no bound: then Events must be set.
	Span time.Duration
	// Profiles is the number of viewer profiles of the population (the
	// accounts that hold them follow). Zero means 20,000.
	Profiles int
	// Titles is the catalog size. Zero means 2,000.
	Titles int
	// Partitions is the partition count of the playback and browse topics,
	// which the lateness rule is evaluated per. Zero means
	// topology.DefaultPartitions.
	Partitions int
	// OutOfOrderRate is the fraction of events (of all events; only
	// heartbeats are chosen) delayed by less than lateness+grace, so that
	// they arrive out of order but on time. DefaultConfig: 0.05.
	OutOfOrderRate float64
	// LateRate is the fraction of events (only heartbeats are chosen) held
	// back long enough to be late by the watermark rule. DefaultConfig: 0.01.
	LateRate float64
	// DuplicateRate is the fraction of sends that are re-sent, with the same
	// event id, within a few sends and at most a second of simulated time.
	// DefaultConfig: 0.01.
	DuplicateRate float64
	// NoIncidents turns off the planted fraud and quality incidents.
	NoIncidents bool
	// Rules are the event-time rules of the aggregates role; zero fields
	// take eventtime's defaults.
	Rules eventtime.Rules
}

// DefaultConfig returns the defaults: 1,000,000 events, 20,000 profiles,
// 2,000 titles, 6 partitions, 5% out of order, 1% late, 1% duplicates,
// incidents on.
func DefaultConfig() Config {
	return Config{
		Events:         1_000_000,
		OutOfOrderRate: 0.05,
		LateRate:       0.01,
		DuplicateRate:  0.01,
	}
}

const (
	defaultProfiles = 20_000
	defaultTitles   = 2_000
	maxTitles       = 1 << 20
	maxProfiles     = 1 << 24
	maxPartitions   = 1 << 16
)

func (c Config) withDefaults() Config {
	if c.Epoch.IsZero() {
		c.Epoch = DefaultEpoch
	}
	if c.Profiles == 0 {
		c.Profiles = defaultProfiles
	}
	if c.Titles == 0 {
		c.Titles = defaultTitles
	}
	if c.Partitions == 0 {
		c.Partitions = topology.DefaultPartitions
	}
	c.Rules = c.Rules.Defaults()
	return c
}

// Validate reports a configuration that cannot run, naming the field.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Events < 0 {
		fail("events must not be negative, got %d", c.Events)
	}
	if c.Span < 0 {
		fail("span must not be negative, got %s", c.Span)
	}
	if c.Events == 0 && c.Span == 0 {
		fail("set a number of events or a simulated span: without either the simulation never ends")
	}
	if c.Epoch.UnixMilli() <= 0 {
		fail("epoch %s is not after 1970", c.Epoch.Format(time.RFC3339))
	}
	if c.Profiles < 1 || c.Profiles > maxProfiles {
		fail("profiles must be between 1 and %d, got %d", maxProfiles, c.Profiles)
	}
	if c.Titles < 20 || c.Titles > maxTitles {
		fail("titles must be between 20 and %d, got %d", maxTitles, c.Titles)
	}
	if c.Partitions < 1 || c.Partitions > maxPartitions {
		fail("partitions must be between 1 and %d, got %d", maxPartitions, c.Partitions)
	}
	rate := func(name string, v float64) {
		if !(v >= 0 && v <= 0.5) {
			fail("%s must be between 0 and 0.5, got %v", name, v)
		}
	}
	rate("out-of-order rate", c.OutOfOrderRate)
	rate("late rate", c.LateRate)
	rate("duplicate rate", c.DuplicateRate)
	if c.OutOfOrderRate+c.LateRate > 0.5 {
		fail("out-of-order rate + late rate must not exceed 0.5 (only heartbeats are delayed), got %v", c.OutOfOrderRate+c.LateRate)
	}
	if err := c.Rules.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
