package dashboard

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// window is the [From, To) range of one API request, in whole minutes (the
// aggregates' windows), and the bucket of time series over it.
type window struct {
	From, To time.Time
	Bucket   time.Duration
}

// bucketSteps are the buckets a time series may use, shortest first.
var bucketSteps = []time.Duration{
	time.Minute, 5 * time.Minute, 15 * time.Minute, 30 * time.Minute,
	time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour, 72 * time.Hour, 168 * time.Hour,
}

// maxPoints is the most buckets a series over the period should have:
// few enough that each CDN × ISP cell has sessions in most buckets, so
// the last hour is in 5-minute buckets and the last 15 minutes in minutes.
const maxPoints = 40

// newWindow is the period ending with the minute that holds now (the open
// window, provisional until it closes), its start aligned to the bucket so
// that buckets begin on round times.
func newWindow(period time.Duration, now time.Time) window {
	bucket := bucketSteps[len(bucketSteps)-1]
	for _, b := range bucketSteps {
		if period/b <= maxPoints {
			bucket = b
			break
		}
	}
	to := now.UTC().Truncate(time.Minute).Add(time.Minute)
	from := to.Add(-period).Truncate(bucket)
	return window{From: from, To: to, Bucket: bucket}
}

// parsePeriod reads the API's period parameter: a Go duration ("90m",
// "6h") or days ("7d"), a whole number of minutes from 1m to 90d.
func parsePeriod(s string) (time.Duration, error) {
	var d time.Duration
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.ParseUint(n, 10, 8)
		if err != nil {
			return 0, fmt.Errorf("want a duration such as 15m, 6h or 7d")
		}
		d = time.Duration(days) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("want a duration such as 15m, 6h or 7d")
		}
	}
	switch {
	case d < time.Minute || d > MaxPeriod:
		return 0, fmt.Errorf("want from 1m to 90d")
	case d%time.Minute != 0:
		return 0, fmt.Errorf("want a whole number of minutes")
	}
	return d, nil
}
