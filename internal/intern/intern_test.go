package intern

import (
	"fmt"
	"testing"
	"unsafe"
)

func TestRecentReturnsTheCachedStringForRepeatedBytes(t *testing.T) {
	c := NewRecent(64)
	first := c.String([]byte("acct:42"))
	again := c.String([]byte("acct:42"))
	if first != "acct:42" || again != first {
		t.Fatalf("got %q then %q, want acct:42 twice", first, again)
	}
	if unsafe.StringData(first) != unsafe.StringData(again) {
		t.Fatal("the second lookup allocated a new string instead of returning the cached one")
	}
	if n := testing.AllocsPerRun(100, func() { c.String([]byte("acct:42")) }); n != 0 {
		t.Fatalf("a hit allocated %.0f times, want 0", n)
	}
}

func TestRecentNeverReturnsAnotherString(t *testing.T) {
	// Far more strings than slots: every slot is taken over many times.
	c := NewRecent(8)
	for round := range 3 {
		for i := range 1000 {
			want := fmt.Sprintf("net:%d", i)
			if got := c.String([]byte(want)); got != want {
				t.Fatalf("round %d: String(%q) = %q", round, want, got)
			}
			if s, ok := c.Lookup([]byte(want)); !ok || s != want {
				t.Fatalf("round %d: Lookup(%q) right after String = %q, %v", round, want, s, ok)
			}
		}
	}
	if s, ok := c.Lookup([]byte("never seen")); ok {
		t.Fatalf("Lookup of a string never kept = %q, true", s)
	}
}

func TestNewRecentRoundsUpToAPowerOfTwo(t *testing.T) {
	for _, tc := range []struct{ n, want int }{{0, 1}, {1, 1}, {3, 4}, {256, 256}, {1000, 1024}} {
		if got := len(NewRecent(tc.n).slots); got != tc.want {
			t.Errorf("NewRecent(%d) has %d slots, want %d", tc.n, got, tc.want)
		}
	}
}
