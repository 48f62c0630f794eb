package alertsink

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/atlas-stream/atlas/consumers/stream"
	"github.com/atlas-stream/atlas/internal/kafkaconn"
	"github.com/atlas-stream/atlas/schemas"
)

// fakeTopic is a re-key topic whose writes fail while failing is set.
type fakeTopic struct {
	mu      sync.Mutex
	failing bool
	tries   int
	written []string // keys, in the order written
}

func (f *fakeTopic) send(_ int, msgs []kafka.Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tries++
	if f.failing {
		return errors.New("refused")
	}
	for _, m := range msgs {
		f.written = append(f.written, string(m.Key))
	}
	return nil
}

func (f *fakeTopic) set(failing bool) {
	f.mu.Lock()
	f.failing = failing
	f.mu.Unlock()
}

func newFakeRekey(t *testing.T) (*Rekey, *fakeTopic) {
	t.Helper()
	// Nothing connects: send is replaced.
	r, err := NewRekey(RekeyConfig{Kafka: kafkaconn.Config{Brokers: []string{"127.0.0.1:1"}}, Topic: "rekey", Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeTopic{}
	r.send = f.send
	return r, f
}

func rekeyRecord(i int) *schemas.Browse {
	return &schemas.Browse{Envelope: schemas.Envelope{EventID: "e" + strconv.Itoa(i), EventTime: int64(i), AccountID: "acc-1"}, Kind: schemas.BrowseImpression}
}

// A write that fails is tried again in place: the records sent after it
// wait, Flush does not report them durable meanwhile, and the topic gets
// every record once, in the order sent.
func TestRekeyKeepsAPartitionsRecordsInOrderThroughFailedWrites(t *testing.T) {
	r, f := newFakeRekey(t)
	defer r.Close()
	h, _ := r.Claim(stream.Claim{Topic: "in", Partition: 0})
	f.set(true)
	var want []string
	for i := range 5 {
		k := "account:acc-1#p0." + strconv.Itoa(i) + "." + strconv.Itoa(i)
		want = append(want, k)
		h.Send(context.Background(), []byte(k), rekeyRecord(i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	if err := h.Flush(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Flush while writes fail = %v, want the context's deadline", err)
	}
	cancel()
	for i := 5; i < 10; i++ {
		k := "account:acc-1#p0." + strconv.Itoa(i) + "." + strconv.Itoa(i)
		want = append(want, k)
		h.Send(context.Background(), []byte(k), rekeyRecord(i))
	}
	f.set(false)
	ctx, cancel = context.WithTimeout(context.Background(), 3*retryPause)
	defer cancel()
	if err := h.Flush(ctx); err != nil {
		t.Fatalf("Flush after the broker came back: %v", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.written) != len(want) {
		t.Fatalf("written %d records %q, want %d", len(f.written), f.written, len(want))
	}
	for i := range want {
		if f.written[i] != want[i] {
			t.Fatalf("record %d written is %s, want %s (order %q)", i, f.written[i], want[i], f.written)
		}
	}
}

// Close gives up a write that keeps failing, with everything queued
// behind it: nothing is written after it, and Flush reports the records.
func TestRekeyCloseGivesUpAFailingWriteAndWritesNothingAfterIt(t *testing.T) {
	r, f := newFakeRekey(t)
	h, _ := r.Claim(stream.Claim{Topic: "in", Partition: 0})
	f.set(true)
	for i := range 3 {
		h.Send(context.Background(), []byte("account:acc-1#p0."+strconv.Itoa(i)+"."+strconv.Itoa(i)), rekeyRecord(i))
	}
	closed := make(chan error, 1)
	go func() { closed <- r.Close() }()
	select {
	case <-closed:
	case <-time.After(2 * retryPause):
		t.Fatal("Close did not return while a write kept failing")
	}
	for i := range 2 {
		if err := h.Flush(context.Background()); err == nil {
			t.Fatalf("Flush %d after Close gave up = nil, want the failed records", i+1)
		}
	}
	// Sent after the writer stopped: failed at once, not left queued.
	h2, _ := r.Claim(stream.Claim{Topic: "in", Partition: 1})
	h2.Send(context.Background(), []byte("account:acc-1#p1.0.0"), rekeyRecord(0))
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := h2.Flush(ctx); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Flush of a record sent after Close = %v, want it failed at once", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.written) != 0 || f.tries == 0 {
		t.Fatalf("written %q in %d tries, want nothing written and at least one try", f.written, f.tries)
	}
}

// A Send that cannot queue its record before its context ends (the claim
// is revoked while the broker is down) breaks the handle: every later
// Flush fails, so the claim never commits past the dropped record.
func TestRekeySendGivenUpOnItsContextBreaksTheHandle(t *testing.T) {
	r, err := NewRekey(RekeyConfig{Kafka: kafkaconn.Config{Brokers: []string{"127.0.0.1:1"}}, Topic: "rekey", Partitions: 1, MaxInFlight: 2})
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeTopic{failing: true}
	r.send = f.send
	h, _ := r.Claim(stream.Claim{Topic: "in", Partition: 0})
	for i := range 2 {
		h.Send(context.Background(), []byte("account:acc-1#p0."+strconv.Itoa(i)+"."+strconv.Itoa(i)), rekeyRecord(i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	h.Send(ctx, []byte("account:acc-1#p0.2.2"), rekeyRecord(2)) // blocks: two in flight
	cancel()
	f.set(false)
	for i := range 2 {
		fctx, fcancel := context.WithTimeout(context.Background(), 3*retryPause)
		err := h.Flush(fctx)
		fcancel()
		if err == nil {
			t.Fatalf("Flush %d after a Send gave up = nil, want an error", i+1)
		}
	}
	r.Close()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range f.written {
		if k == "account:acc-1#p0.2.2" {
			t.Fatalf("the record whose Send gave up was written: %q", f.written)
		}
	}
}
