package slab

import (
	"bytes"
	"fmt"
	"testing"
)

func TestCopiesStayIntactAcrossBlocks(t *testing.T) {
	var s Slab
	var got [][]byte
	var want []string
	// About 3 blocks' worth, and one value larger than a block.
	for i := range 20_000 {
		v := fmt.Sprintf("key-%d#p3.%d.%d", i, i*7, i*11)
		want = append(want, v)
		got = append(got, s.Copy([]byte(v)))
	}
	big := bytes.Repeat([]byte("x"), BlockSize+1)
	gotBig := s.Copy(big)
	for i := range got {
		if string(got[i]) != want[i] {
			t.Fatalf("copy %d = %q, want %q", i, got[i], want[i])
		}
	}
	if !bytes.Equal(gotBig, big) {
		t.Fatal("the copy larger than a block differs")
	}
	// Appending to a returned slice must not overwrite its neighbour.
	a, b := s.Copy([]byte("aaaa")), s.Copy([]byte("bbbb"))
	_ = append(a, "ZZZZ"...)
	if string(b) != "bbbb" {
		t.Fatalf("appending to one copy overwrote the next: %q", b)
	}
}

func TestTailAndKeepWriteIntoTheBlock(t *testing.T) {
	var s Slab
	put := func(v string) []byte { return s.Keep(append(s.Tail(16), v...)) }
	first := put("first")
	// A value larger than the room left and than its hint: it outgrows
	// the block and gets an array of its own.
	long := string(bytes.Repeat([]byte("y"), BlockSize))
	second := put(long)
	third := put("third")
	if string(first) != "first" || string(second) != long || string(third) != "third" {
		t.Fatalf("got %q, %d bytes, %q", first, len(second), third)
	}
	// A Tail that was not kept is used again.
	_ = append(s.Tail(16), "dropped"...)
	fourth := put("fourth")
	if string(third) != "third" || string(fourth) != "fourth" {
		t.Fatalf("got %q, %q after an unkept Tail", third, fourth)
	}
	if cap(first) != len(first) || cap(fourth) != len(fourth) {
		t.Fatal("a kept value can be appended to in place, over its neighbour")
	}
	if n := testing.AllocsPerRun(1000, func() { s.Copy([]byte("acct:1234#p1.100.200")) }); n > 0.01 {
		t.Fatalf("Copy allocated %.3f times per call, want about 1 per %d bytes", n, BlockSize)
	}
}
