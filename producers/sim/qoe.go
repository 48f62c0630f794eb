package sim

// Streaming quality is calibrated on the youtube-qoe data set
// (../shared/data/youtube-qoe/ifip_networking.csv.gz: 12,472 YouTube
// sessions measured on shaped mobile links). The shapes of three per-session
// distributions come from it, as 21 quantiles (p = 0, 0.05, …, 1; the value
// at index min(n-1, floor(p·n)) of the sorted column):
//
//   - stalls per minute: column pl_norm_buf_events;
//   - seconds per stall: (run_overlength − the median run_overlength of
//     sessions without stalls, i.e. the start-up cost) / pl_buffering_events,
//     floored at 0, over sessions with at least one stall;
//   - quality switches per minute: pl_assumed_switches / (vid_length / 60).
//
// TestQoECalibrationMatchesDataset recomputes them from the CSV. A session
// draws its rates from these distributions (linear interpolation between
// quantiles) and then scales them by its network class (see netClass):
// the data set was measured on throttled mobile links, so fixed broadband
// stalls much less often and more briefly.
var (
	qoeStallsPerMin = [21]float64{0, 0, 0, 0, 0, 0, 0, 0, 0, 0.1002, 0.1432, 0.1974, 0.2564, 0.3279, 0.3947, 0.4932, 0.5728, 0.7763, 0.9836, 1.3552, 5.9016}
	qoeStallSec     = [21]float64{0, 2.9, 5.19, 6.7, 8.0, 9.2767, 10.4433, 11.61, 12.775, 14.035, 15.305, 16.725, 18.175, 19.78, 21.63, 23.92, 26.56, 30.365, 36.56, 48.95, 1087.02}
	qoeSwitchPerMin = [21]float64{0, 0, 0, 0, 0, 0, 0, 0, 0.2186, 0.4, 0.5357, 0.6593, 0.8094, 0.9677, 1.0024, 1.202, 1.4062, 1.6, 1.8, 2.137, 4.918}
)

// quantile samples a distribution given by 21 quantiles at u in [0, 1).
func quantile(q *[21]float64, u float64) float64 {
	x := u * 20
	i := int(x)
	if i >= 20 {
		return q[20]
	}
	f := x - float64(i)
	return q[i] + f*(q[i+1]-q[i])
}

// netClass scales the data set's rates to a device's network.
type netClass struct {
	stallRate  float64 // multiplies stalls per minute
	stallLen   float64 // multiplies seconds per stall
	switchRate float64 // multiplies switches per minute
}

var (
	netBroadband = netClass{stallRate: 0.05, stallLen: 0.25, switchRate: 0.3}
	netMobile    = netClass{stallRate: 0.25, stallLen: 0.5, switchRate: 1}
)

// maxStallMs caps one stall: the data set's tail (minutes) is measurement
// artefacts more than player behaviour.
const maxStallMs = 60_000

// bitrateLadder is the encoding ladder in kbps, lowest first.
var bitrateLadder = [...]int64{235, 375, 560, 750, 1050, 1750, 2350, 3000, 4300, 5800}

// Quality incident factors: inside a degraded CDN × ISP × country, stalls
// are this many times as frequent (plus a floor) and this many times as
// long, start failures this many times as likely, and the bitrate drops.
const (
	degradeStallRate    = 10.0
	degradeStallFloor   = 0.4 // stalls per minute added
	degradeStallLen     = 3.0
	baseStartFailure    = 0.006
	degradeStartFailure = 0.5
	baseMidplayError    = 0.0004 // per heartbeat interval
)
