package embeddings

// table is an open-addressing hash map from title index to a fixed-point
// weight: one row of the co-occurrence model. It is smaller and faster to
// iterate than a Go map (12 bytes a slot, no pointers), which matters
// because a row is walked for every recommendation.
//
// Values are integers on purpose: sums of integers do not depend on the
// order of the additions, so every member that applies the same increments
// in any order holds bit-identical rows (see the package doc).
type table struct {
	keys []int32 // emptyKey marks a free slot
	vals []uint64
	n    int
}

const emptyKey = -1

func (t *table) find(k int32) int {
	mask := len(t.keys) - 1
	for i := int(mix32(uint32(k))) & mask; ; i = (i + 1) & mask {
		if t.keys[i] == k || t.keys[i] == emptyKey {
			return i
		}
	}
}

// add adds v to the value of k.
func (t *table) add(k int32, v uint64) {
	if (t.n+1)*4 > len(t.keys)*3 {
		t.grow()
	}
	i := t.find(k)
	if t.keys[i] == emptyKey {
		t.keys[i] = k
		t.n++
	}
	t.vals[i] += v
}

// get returns the value of k, 0 when absent.
func (t *table) get(k int32) uint64 {
	if t.n == 0 {
		return 0
	}
	i := t.find(k)
	if t.keys[i] == emptyKey {
		return 0
	}
	return t.vals[i]
}

func (t *table) grow() {
	size := max(8, len(t.keys)*2)
	old, oldVals := t.keys, t.vals
	t.keys, t.vals, t.n = make([]int32, size), make([]uint64, size), 0
	for i := range t.keys {
		t.keys[i] = emptyKey
	}
	for i, k := range old {
		if k != emptyKey {
			t.add(k, oldVals[i])
		}
	}
}

// len returns the number of keys.
func (t *table) len() int { return t.n }

// mix32 spreads sequential title indices over the slots.
func mix32(x uint32) uint32 {
	x ^= x >> 16
	x *= 0x7feb352d
	x ^= x >> 15
	x *= 0x846ca68b
	x ^= x >> 16
	return x
}
