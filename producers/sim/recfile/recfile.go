// Package recfile reads and writes Atlas record files: a stream of records,
// each with its schema, that tools can replay without Kafka (the simulator's
// --out, `atlas eval`).
//
// Format: the 8-byte magic "ATLASRF1", then for every record
//
//	u8      length of the schema name (n)
//	n bytes schema name, e.g. "playback.v1"
//	u32     big-endian length of the value (m)
//	m bytes the value: the msgpack encoding of the record (schemas.Append)
//
// A file whose name ends in ".gz" is gzip-compressed as a whole (see
// [Create] and [Open]). Records appear in the order they were written, which
// for the simulator is the order it sent them.
package recfile

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/atlas-stream/atlas/schemas"
)

// Magic starts every record file.
const Magic = "ATLASRF1"

// MaxValueBytes bounds one value on read, so that a corrupt length cannot
// make the reader allocate gigabytes.
const MaxValueBytes = 1 << 20

// Writer appends records to a record file. It buffers: call Flush (or
// Close of a file from Create) at the end. It is not safe for concurrent use.
type Writer struct {
	w       *bufio.Writer
	scratch []byte
	started bool
}

// NewWriter returns a Writer that writes to w, magic first.
func NewWriter(w io.Writer) *Writer { return &Writer{w: bufio.NewWriterSize(w, 1<<16)} }

// Write encodes rec and appends it.
func (w *Writer) Write(rec schemas.Record) error {
	var err error
	w.scratch, err = schemas.Append(w.scratch[:0], rec)
	if err != nil {
		return err
	}
	return w.WriteRaw(rec.Schema(), w.scratch)
}

// WriteRaw appends an encoded value with its schema. value is not retained.
func (w *Writer) WriteRaw(schema schemas.Schema, value []byte) error {
	if !w.started {
		w.started = true
		if _, err := w.w.WriteString(Magic); err != nil {
			return fmt.Errorf("cannot write record file: %w", err)
		}
	}
	if len(schema) > 255 {
		return fmt.Errorf("cannot write record: schema name %q is over 255 bytes", schema)
	}
	var hdr [4]byte
	w.w.WriteByte(byte(len(schema)))
	w.w.WriteString(string(schema))
	binary.BigEndian.PutUint32(hdr[:], uint32(len(value)))
	w.w.Write(hdr[:])
	if _, err := w.w.Write(value); err != nil {
		return fmt.Errorf("cannot write record file: %w", err)
	}
	return nil
}

// Flush writes buffered records to the underlying writer.
func (w *Writer) Flush() error {
	if !w.started {
		w.started = true
		w.w.WriteString(Magic)
	}
	if err := w.w.Flush(); err != nil {
		return fmt.Errorf("cannot write record file: %w", err)
	}
	return nil
}

// Reader reads a record file. It is not safe for concurrent use.
type Reader struct {
	r       *bufio.Reader
	started bool
	buf     []byte
}

// NewReader returns a Reader of r.
func NewReader(r io.Reader) *Reader { return &Reader{r: bufio.NewReaderSize(r, 1<<16)} }

// ErrCorrupt is wrapped by errors about a malformed file.
var ErrCorrupt = errors.New("corrupt record file")

// Next returns the next record's schema and value. The value is valid until
// the next call (do not retain it). At the end of the file it returns
// io.EOF.
func (r *Reader) Next() (schemas.Schema, []byte, error) {
	if !r.started {
		r.started = true
		var m [len(Magic)]byte
		if _, err := io.ReadFull(r.r, m[:]); err != nil {
			return "", nil, fmt.Errorf("%w: cannot read the magic: %v", ErrCorrupt, err)
		}
		if string(m[:]) != Magic {
			return "", nil, fmt.Errorf("%w: bad magic %q", ErrCorrupt, m[:])
		}
	}
	n, err := r.r.ReadByte()
	if err == io.EOF {
		return "", nil, io.EOF
	}
	if err != nil {
		return "", nil, fmt.Errorf("cannot read record file: %w", err)
	}
	var hdr [255 + 4]byte
	if _, err := io.ReadFull(r.r, hdr[:int(n)+4]); err != nil {
		return "", nil, fmt.Errorf("%w: truncated record header: %v", ErrCorrupt, err)
	}
	schema := schemas.Schema(hdr[:n])
	m := binary.BigEndian.Uint32(hdr[n : n+4])
	if m > MaxValueBytes {
		return "", nil, fmt.Errorf("%w: a value declares %d bytes, over the limit of %d", ErrCorrupt, m, MaxValueBytes)
	}
	if cap(r.buf) < int(m) {
		r.buf = make([]byte, m)
	}
	r.buf = r.buf[:m]
	if _, err := io.ReadFull(r.r, r.buf); err != nil {
		return "", nil, fmt.Errorf("%w: truncated value: %v", ErrCorrupt, err)
	}
	return schema, r.buf, nil
}

// File is a record file opened by Create or Open.
type File struct {
	*Writer
	*Reader
	f  *os.File
	zw *gzip.Writer
	zr *gzip.Reader
}

// Create creates (truncates) a record file for writing, gzip-compressed when
// path ends in ".gz".
func Create(path string) (*File, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cannot create record file: %w", err)
	}
	rf := &File{f: f}
	if strings.HasSuffix(path, ".gz") {
		rf.zw = gzip.NewWriter(f)
		rf.Writer = NewWriter(rf.zw)
	} else {
		rf.Writer = NewWriter(f)
	}
	return rf, nil
}

// Open opens a record file for reading.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot open record file: %w", err)
	}
	rf := &File{f: f}
	if strings.HasSuffix(path, ".gz") {
		rf.zr, err = gzip.NewReader(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("cannot open record file %s: %w", path, err)
		}
		rf.Reader = NewReader(rf.zr)
	} else {
		rf.Reader = NewReader(f)
	}
	return rf, nil
}

// Close flushes a file being written and closes it.
func (f *File) Close() error {
	var errs []error
	if f.Writer != nil {
		errs = append(errs, f.Writer.Flush())
	}
	if f.zw != nil {
		errs = append(errs, f.zw.Close())
	}
	if f.zr != nil {
		errs = append(errs, f.zr.Close())
	}
	errs = append(errs, f.f.Close())
	return errors.Join(errs...)
}
