package nab

import (
	"fmt"
	"os"
	"testing"
)

func TestExpNAB(t *testing.T) {
	if os.Getenv("EXP_NAB") == "" {
		t.Skip()
	}
	for _, corpus := range [][]string{{"realKnownCause"}, nil} {
		files, err := Load("/work/shared/data/nab", corpus)
		if err != nil {
			t.Fatal(err)
		}
		for _, cfg := range []Config{{}, {Z: 4}, {Z: 5}, {Z: 8}, {Window: 100}, {Window: 500}, {Consecutive: 1}, {Consecutive: 3}, {Z: 5, Consecutive: 1, Window: 400}} {
			var tot Totals
			for _, f := range files {
				tot.Add(Score(f, Detect(f.Points, cfg), Standard))
			}
			fmt.Printf("%v %+v: files %d windows %d detected %.3f fp/10k %.2f nab %.1f\n", corpus, cfg, tot.Files, tot.Windows, tot.DetectedShare(), tot.FPPer10k(), tot.Normalized())
		}
	}
}
