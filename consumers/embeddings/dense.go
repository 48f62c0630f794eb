package embeddings

import (
	"math"
	"slices"
)

// dense holds the dense title vectors of one refresh: the top Dim
// eigenvectors of the symmetrised, cosine-normalised co-occurrence matrix,
// each scaled by the square root of its eigenvalue, so that the dot
// product of two title vectors approximates their normalised
// co-occurrence. A profile's taste vector is the recency-weighted sum of
// its context's vectors (Model.Taste).
type dense struct {
	dim     int
	changes uint64 // Model.changes when the refresh read the model
	n       int    // titles with a vector: indices below n
	vecs    []float32
}

func (d *dense) vector(t int32) []float32 {
	if int(t) >= d.n {
		return nil
	}
	return d.vecs[int(t)*d.dim : int(t+1)*d.dim]
}

func (d *dense) addScores(dst []float64, v []float32, w float64) {
	for i := 0; i < min(len(dst), d.n); i++ {
		x := d.vecs[i*d.dim : (i+1)*d.dim]
		dot := float32(0)
		for c := range x {
			dot += x[c] * v[c]
		}
		dst[i] += w * float64(dot)
	}
}

// csr is a symmetric sparse matrix in canonical (title id) order.
type csr struct {
	n   int
	ptr []int
	idx []int32
	val []float64
}

// mul sets y = A·x for n×k row-major x and y.
func (a *csr) mul(x, y []float64, k int) {
	clear(y)
	for i := 0; i < a.n; i++ {
		yi := y[i*k : (i+1)*k]
		for p := a.ptr[i]; p < a.ptr[i+1]; p++ {
			v := a.val[p]
			xj := x[int(a.idx[p])*k : int(a.idx[p]+1)*k]
			for c := range yi {
				yi[c] += v * xj[c]
			}
		}
	}
}

// Refresh recomputes the dense title vectors from the model as it is now
// and reports whether it did (false when nothing changed since the last
// refresh). It reads the model under a short read lock and computes
// without it, so learning goes on meanwhile; a refresh of 10,000 titles
// takes about a second.
//
// The result depends only on the model's counts, never on the order in
// which titles were registered or increments applied: every member with
// the same counts computes bit-identical vectors.
func (m *Model) Refresh() bool {
	m.mu.RLock()
	if m.dense != nil && m.dense.changes == m.changes {
		m.mu.RUnlock()
		return false
	}
	changes := m.changes
	order := m.sortedIDsLocked()
	n := len(order)
	pos := make([]int32, n)
	for r, t := range order {
		pos[t] = int32(r)
	}
	a := &csr{n: n, ptr: make([]int, n+1)}
	type cell struct {
		col int32
		v   float64
	}
	var cells []cell
	for r, t := range order {
		cells = cells[:0]
		nt := float64(m.count[t])
		row := &m.rows[t]
		for s, i := range row.keys {
			if i == emptyKey || nt == 0 || m.count[i] == 0 {
				continue
			}
			sym := float64(row.vals[s]+m.rows[i].get(t)) / 2
			cells = append(cells, cell{pos[i], sym / math.Sqrt(nt*float64(m.count[i]))})
		}
		slices.SortFunc(cells, func(x, y cell) int { return int(x.col - y.col) })
		for _, c := range cells {
			a.idx = append(a.idx, c.col)
			a.val = append(a.val, c.v)
		}
		a.ptr[r+1] = len(a.idx)
	}
	ids := make([]string, n)
	for r, t := range order {
		ids[r] = m.ids[t]
	}
	dim := m.cfg.Dim
	seed := m.cfg.Seed
	m.mu.RUnlock()

	canon := eigenVectors(a, ids, dim, seed)
	d := &dense{dim: dim, changes: changes, n: n, vecs: make([]float32, n*dim)}
	for r, t := range order {
		copy(d.vecs[int(t)*dim:int(t+1)*dim], canon[r*dim:(r+1)*dim])
	}
	m.mu.Lock()
	if m.dense == nil || m.dense.changes < changes {
		m.dense = d
	}
	m.mu.Unlock()
	return true
}

// eigenVectors returns, for each row of a, the row of the top-dim
// eigenvectors (largest eigenvalues) scaled by √max(λ,0), in float32, by
// randomised subspace iteration from a start that depends on the title ids
// and the seed only.
func eigenVectors(a *csr, ids []string, dim int, seed uint64) []float32 {
	n := a.n
	out := make([]float32, n*dim)
	if n == 0 {
		return out
	}
	k := min(dim+8, n)
	x := make([]float64, n*k)
	for r, id := range ids {
		h := hashString(seed, id)
		for c := 0; c < k; c++ {
			x[r*k+c] = gaussian(h, uint64(c))
		}
	}
	y := make([]float64, n*k)
	orthonormalize(x, n, k)
	for it := 0; it < 4; it++ {
		a.mul(x, y, k)
		orthonormalize(y, n, k)
		x, y = y, x
	}
	a.mul(x, y, k) // y = A·Q
	b := make([]float64, k*k)
	for p := 0; p < k; p++ {
		for q := 0; q < k; q++ {
			s := 0.0
			for i := 0; i < n; i++ {
				s += x[i*k+p] * y[i*k+q]
			}
			b[p*k+q] = s
		}
	}
	for p := 0; p < k; p++ { // exact symmetry for Jacobi
		for q := p + 1; q < k; q++ {
			s := (b[p*k+q] + b[q*k+p]) / 2
			b[p*k+q], b[q*k+p] = s, s
		}
	}
	vals, vecs := jacobi(b, k)
	ord := make([]int, k)
	for i := range ord {
		ord[i] = i
	}
	slices.SortStableFunc(ord, func(p, q int) int {
		switch {
		case vals[p] > vals[q]:
			return -1
		case vals[p] < vals[q]:
			return 1
		}
		return 0
	})
	for c := 0; c < min(dim, k); c++ {
		e := ord[c]
		sq := math.Sqrt(max(vals[e], 0))
		// Fix the sign so that the largest component is positive: an
		// eigenvector's sign is arbitrary, and served vectors should not
		// flip between refreshes for no reason.
		best, sign := 0.0, 1.0
		for i := 0; i < n; i++ {
			u := 0.0
			for p := 0; p < k; p++ {
				u += x[i*k+p] * vecs[p*k+e]
			}
			if math.Abs(u) > best {
				best, sign = math.Abs(u), math.Copysign(1, u)
			}
		}
		for i := 0; i < n; i++ {
			u := 0.0
			for p := 0; p < k; p++ {
				u += x[i*k+p] * vecs[p*k+e]
			}
			out[i*dim+c] = float32(sign * u * sq)
		}
	}
	return out
}

// orthonormalize makes the k columns of the n×k matrix x orthonormal
// (modified Gram-Schmidt, twice for stability); a column that vanishes is
// left zero.
func orthonormalize(x []float64, n, k int) {
	for pass := 0; pass < 2; pass++ {
		for c := 0; c < k; c++ {
			for c2 := 0; c2 < c; c2++ {
				dot := 0.0
				for i := 0; i < n; i++ {
					dot += x[i*k+c] * x[i*k+c2]
				}
				for i := 0; i < n; i++ {
					x[i*k+c] -= dot * x[i*k+c2]
				}
			}
			norm := 0.0
			for i := 0; i < n; i++ {
				norm += x[i*k+c] * x[i*k+c]
			}
			norm = math.Sqrt(norm)
			if norm < 1e-300 {
				for i := 0; i < n; i++ {
					x[i*k+c] = 0
				}
				continue
			}
			for i := 0; i < n; i++ {
				x[i*k+c] /= norm
			}
		}
	}
}

// jacobi returns the eigenvalues and eigenvectors (columns of a k×k
// row-major matrix) of the symmetric matrix a, which it destroys.
func jacobi(a []float64, k int) ([]float64, []float64) {
	v := make([]float64, k*k)
	for i := 0; i < k; i++ {
		v[i*k+i] = 1
	}
	for sweep := 0; sweep < 100; sweep++ {
		off := 0.0
		for p := 0; p < k; p++ {
			for q := p + 1; q < k; q++ {
				off += a[p*k+q] * a[p*k+q]
			}
		}
		if off < 1e-30 {
			break
		}
		for p := 0; p < k; p++ {
			for q := p + 1; q < k; q++ {
				apq := a[p*k+q]
				if math.Abs(apq) < 1e-300 {
					continue
				}
				theta := (a[q*k+q] - a[p*k+p]) / (2 * apq)
				t := 1 / (math.Abs(theta) + math.Sqrt(theta*theta+1))
				if theta < 0 {
					t = -t
				}
				c := 1 / math.Sqrt(t*t+1)
				s := t * c
				for r := 0; r < k; r++ {
					arp, arq := a[r*k+p], a[r*k+q]
					a[r*k+p], a[r*k+q] = c*arp-s*arq, s*arp+c*arq
				}
				for r := 0; r < k; r++ {
					apr, aqr := a[p*k+r], a[q*k+r]
					a[p*k+r], a[q*k+r] = c*apr-s*aqr, s*apr+c*aqr
				}
				for r := 0; r < k; r++ {
					vrp, vrq := v[r*k+p], v[r*k+q]
					v[r*k+p], v[r*k+q] = c*vrp-s*vrq, s*vrp+c*vrq
				}
			}
		}
	}
	vals := make([]float64, k)
	for i := range vals {
		vals[i] = a[i*k+i]
	}
	return vals, v
}

// hashString is FNV-1a 64 of s, mixed with seed.
func hashString(seed uint64, s string) uint64 {
	h := uint64(14695981039346656037) ^ seed*0x9e3779b97f4a7c15
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// gaussian returns a standard normal number that depends only on (h, c).
func gaussian(h, c uint64) float64 {
	u1 := (float64(splitmix(h^splitmix(c*2+1))>>11) + 0.5) / (1 << 53)
	u2 := (float64(splitmix(h^splitmix(c*2+2))>>11) + 0.5) / (1 << 53)
	return math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2)
}

func splitmix(z uint64) uint64 {
	z += 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133fe111
	return z ^ (z >> 31)
}
