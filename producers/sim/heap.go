package sim

// minHeap is a binary heap ordered by less; typed, so that pushing values
// does not allocate an interface per element as container/heap does.
type minHeap[T any] struct {
	a    []T
	less func(x, y *T) bool
}

func (h *minHeap[T]) len() int { return len(h.a) }

func (h *minHeap[T]) top() *T { return &h.a[0] }

func (h *minHeap[T]) push(x T) {
	h.a = append(h.a, x)
	h.up(len(h.a) - 1)
}

func (h *minHeap[T]) pop() T {
	n := len(h.a) - 1
	x := h.a[0]
	h.a[0] = h.a[n]
	var zero T
	h.a[n] = zero
	h.a = h.a[:n]
	if n > 0 {
		h.down(0)
	}
	return x
}

// fixTop restores the order after the top element's key grew.
func (h *minHeap[T]) fixTop() { h.down(0) }

func (h *minHeap[T]) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !h.less(&h.a[i], &h.a[p]) {
			return
		}
		h.a[i], h.a[p] = h.a[p], h.a[i]
		i = p
	}
}

func (h *minHeap[T]) down(i int) {
	n := len(h.a)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && h.less(&h.a[r], &h.a[l]) {
			m = r
		}
		if !h.less(&h.a[m], &h.a[i]) {
			return
		}
		h.a[i], h.a[m] = h.a[m], h.a[i]
		i = m
	}
}
