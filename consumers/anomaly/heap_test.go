package anomaly

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
)

// TestPendingHeapPopsInComparePendingOrder interleaves pushes and pops
// (so slots are reused) and checks every pop against a sorted copy.
func TestPendingHeapPopsInComparePendingOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var h pendingHeap
	var want []pending // what is buffered, kept sorted
	popped, most := 0, 0
	for step := 0; step < 20000; step++ {
		if h.Len() != len(want) {
			t.Fatalf("step %d: Len %d, want %d", step, h.Len(), len(want))
		}
		if len(want) == 0 || rng.IntN(3) > 0 {
			// Few distinct times, ids and subjects: ties on t and on id
			// must be broken by the strings.
			p := pending{t: int64(rng.IntN(50)), id: "e" + strconv.Itoa(rng.IntN(20)), subject: "s" + strconv.Itoa(rng.IntN(5)), srcOff: int64(step)}
			h.push(p)
			i, _ := slices.BinarySearchFunc(want, p, func(a, b pending) int { return comparePending(&a, &b) })
			want = slices.Insert(want, i, p)
			most = max(most, len(want))
			continue
		}
		if h.minT() != want[0].t {
			t.Fatalf("step %d: minT %d, want %d", step, h.minT(), want[0].t)
		}
		got := h.pop()
		if comparePending(&got, &want[0]) != 0 {
			t.Fatalf("step %d: popped %+v, want %+v", step, got, want[0])
		}
		want = want[1:]
		popped++
	}
	if popped < 5000 || len(h.slots) != most {
		t.Fatalf("popped %d; %d slots for at most %d buffered: freed slots not reused", popped, len(h.slots), most)
	}
}
