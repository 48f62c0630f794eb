package sim

import (
	"compress/gzip"
	"encoding/csv"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
)

// qoeDataEnv names the youtube-qoe CSV; the default is the shared data
// folder beside the project (../shared/data from the repository root).
const qoeDataEnv = "ATLAS_QOE_DATA"

// TestQoECalibrationMatchesDataset recomputes the quantile tables of qoe.go
// from the data set, so that the numbers in the code are the data's.
func TestQoECalibrationMatchesDataset(t *testing.T) {
	path := os.Getenv(qoeDataEnv)
	if path == "" {
		path = filepath.Join("..", "..", "..", "shared", "data", "youtube-qoe", "ifip_networking.csv.gz")
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("cannot read the youtube-qoe data set (set %s to its ifip_networking.csv.gz): %v", qoeDataEnv, err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	r := csv.NewReader(zr)
	head, err := r.Read()
	if err != nil {
		t.Fatal(err)
	}
	col := map[string]int{}
	for i, h := range head {
		col[h] = i
	}
	var rows [][]string
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, rec)
	}
	num := func(row []string, name string) float64 {
		v, err := strconv.ParseFloat(row[col[name]], 64)
		if err != nil {
			t.Fatalf("column %s: %v", name, err)
		}
		return v
	}
	var stalls, switches, noStallOver []float64
	for _, row := range rows {
		stalls = append(stalls, num(row, "pl_norm_buf_events"))
		switches = append(switches, num(row, "pl_assumed_switches")/(num(row, "vid_length")/60))
		if row[col["pl_buffering_boolean"]] == "False" {
			noStallOver = append(noStallOver, num(row, "run_overlength"))
		}
	}
	slices.Sort(noStallOver)
	n := len(noStallOver)
	startup := (noStallOver[(n-1)/2] + noStallOver[n/2]) / 2
	var stallSec []float64
	for _, row := range rows {
		if b := num(row, "pl_buffering_events"); b > 0 {
			stallSec = append(stallSec, math.Max(0, (num(row, "run_overlength")-startup)/b))
		}
	}
	check := func(name string, vals []float64, want *[21]float64) {
		t.Helper()
		slices.Sort(vals)
		for i := 0; i <= 20; i++ {
			got := vals[min(len(vals)-1, int(float64(i)/20*float64(len(vals))))]
			if math.Abs(got-want[i]) > 1e-3*math.Max(1, math.Abs(want[i])) {
				t.Errorf("%s quantile %d/20: data %.4f, table %.4f", name, i, got, want[i])
			}
		}
	}
	check("stalls per minute", stalls, &qoeStallsPerMin)
	check("seconds per stall", stallSec, &qoeStallSec)
	check("switches per minute", switches, &qoeSwitchPerMin)
}
