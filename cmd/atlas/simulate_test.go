package main

import (
	"strings"
	"testing"
	"time"
)

func TestBehindRateWarnsOnlyWhenMoreThanFivePercentShort(t *testing.T) {
	for _, c := range []struct {
		name    string
		rate    float64
		sent    int64
		elapsed time.Duration
		kafka   bool
		batch   int
		want    []string // substrings; none: no warning
	}{
		{name: "unpaced", rate: 0, sent: 10, elapsed: time.Minute},
		{name: "on time", rate: 1000, sent: 10000, elapsed: 10 * time.Second},
		{name: "4% short", rate: 1000, sent: 9600, elapsed: 10 * time.Second},
		{name: "small batch", rate: 23000, sent: 131000, elapsed: 10 * time.Second, kafka: true, batch: 50,
			want: []string{"sending 13100 events/s, 57% of --rate 23000", "--batch 50", "try --batch 230"}},
		{name: "batch large enough", rate: 23000, sent: 131000, elapsed: 10 * time.Second, kafka: true, batch: 2000,
			want: []string{"57% of --rate 23000", "cannot take more"}},
		{name: "file only", rate: 1000, sent: 5000, elapsed: 10 * time.Second,
			want: []string{"sending 500 events/s, 50% of --rate 1000: the load is lower than asked"}},
	} {
		got := behindRate(c.rate, c.sent, c.elapsed, c.kafka, c.batch)
		if len(c.want) == 0 && got != "" {
			t.Errorf("%s: warned %q, want nothing", c.name, got)
		}
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: warning %q does not say %q", c.name, got, w)
			}
		}
		if strings.Contains(got, "--batch") != (c.kafka && c.batch < 230 && len(c.want) > 0) {
			t.Errorf("%s: warning %q: the --batch hint belongs only to Kafka runs with a small batch", c.name, got)
		}
	}
}
