package main

import (
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

func TestAlertsTailFromTakesTheFormsUsersWrite(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		in   string
		want startAt
	}{
		{"now", startAt{offset: kafka.LastOffset}},
		{"beginning", startAt{offset: kafka.FirstOffset}},
		{"2h", startAt{at: now.Add(-2 * time.Hour)}},
		{"-2h", startAt{at: now.Add(-2 * time.Hour)}}, // as atlas query writes it
		{"2026-11-26T06:00:00Z", startAt{at: time.Date(2026, 11, 26, 6, 0, 0, 0, time.UTC)}},
	} {
		got, err := parseFrom(c.in, now)
		if err != nil || got.offset != c.want.offset || !got.at.Equal(c.want.at) {
			t.Errorf("parseFrom(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"yesterday", "0s", "--2h"} {
		if _, err := parseFrom(bad, now); err == nil {
			t.Errorf("parseFrom(%q) accepted", bad)
		}
	}
}
