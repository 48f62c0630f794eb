package schemas_test

import (
	"errors"
	"math"
	"runtime"
	"testing"
	"time"

	"github.com/atlas-stream/atlas/schemas"
	"github.com/atlas-stream/atlas/schemas/badinput"
)

// Every entry of the bad-input catalogue is stopped where the catalogue
// says, with an error that names the field and the problem, and costs no
// more memory than a small multiple of its own size.
func TestTheBadInputCatalogueIsStoppedWithItsReasonAndBoundedMemory(t *testing.T) {
	now := time.Now()
	cases := badinput.Cases(now)
	stages := map[badinput.Stage]int{}
	truncations := 0
	var worst struct {
		name      string
		allocated uint64
	}
	for _, c := range cases {
		d := schemas.NewDecoder(schemas.Limits{})
		var rec schemas.Record
		var err error
		allocated := bytesAllocated(func() { rec, err = d.Decode(c.Schema, c.Value) })
		if limit := uint64(4096 + 4*len(c.Value)); allocated > limit {
			t.Errorf("%s: decoding allocated %d bytes for %d bytes of input (limit %d)", c.Name, allocated, len(c.Value), limit)
		}
		if allocated > worst.allocated {
			worst.name, worst.allocated = c.Name, allocated
		}
		field, stage := "", badinput.StageDecode
		if err == nil {
			stage = badinput.StageValidate
			err = schemas.Validate(rec, schemas.Limits{}, now)
			var ve *schemas.ValidationError
			if errors.As(err, &ve) {
				field = ve.Field
			} else if err != nil {
				t.Errorf("%s: validation error %T is not a *ValidationError: %v", c.Name, err, err)
			}
		} else {
			var de *schemas.DecodeError
			switch {
			case errors.As(err, &de):
				field = de.Field
			case errors.Is(err, schemas.ErrUnknownSchema):
			default:
				t.Errorf("%s: decode error %T is neither a *DecodeError nor ErrUnknownSchema: %v", c.Name, err, err)
			}
		}
		switch {
		case err == nil:
			t.Errorf("%s: accepted; want it stopped at %s naming %q", c.Name, c.Stage, c.Field)
		case stage != c.Stage:
			t.Errorf("%s: stopped at %s (%v); want %s", c.Name, stage, err, c.Stage)
		case !c.MatchField(field):
			t.Errorf("%s: the error names field %q, want %q: %v", c.Name, field, c.Field, err)
		case !c.Match(err.Error()):
			t.Errorf("%s: the error %q does not match %q", c.Name, err, c.Reason)
		}
		stages[stage]++
		if c.Field == badinput.AnyField {
			truncations++
		}
		if c.Field != badinput.AnyField { // the truncations are summed up below
			t.Logf("%-70s %-8s field=%-4q %d B in, %d B allocated: %v", c.Name, stage, field, len(c.Value), allocated, err)
		}
	}
	t.Logf("%d truncations of a valid event: each stopped by the decoder naming the field being read", truncations)
	t.Logf("%d cases: %d stopped by the decoder, %d by validation; most allocated: %d bytes (%s)",
		len(cases), stages[badinput.StageDecode], stages[badinput.StageValidate], worst.allocated, worst.name)
}

// A valid neighbour of the catalogue passes, so that the catalogue's cases
// fail for their own problem and nothing else.
func TestTheCatalogueValidEventIsValid(t *testing.T) {
	now := time.Now()
	b, err := schemas.Marshal(badinput.Valid(now, "pro-ok"))
	if err != nil {
		t.Fatal(err)
	}
	rec, err := schemas.NewDecoder(schemas.Limits{}).Decode(string(schemas.SchemaPlayback), b)
	if err != nil {
		t.Fatal(err)
	}
	if err := schemas.Validate(rec, schemas.Limits{}, now); err != nil {
		t.Fatal(err)
	}
}

// bytesAllocated returns the heap bytes f allocates: the least of three
// runs, because the runtime's own background allocations land in the same
// counter.
func bytesAllocated(f func()) uint64 {
	least := uint64(math.MaxUint64)
	for range 3 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		least = min(least, after.TotalAlloc-before.TotalAlloc)
	}
	return least
}
