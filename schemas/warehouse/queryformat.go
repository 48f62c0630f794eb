package warehouse

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Formats of [Result.Write].
const (
	FormatTable = "table"
	FormatJSON  = "json"
	FormatCSV   = "csv"
)

// Write writes r to w as a table (aligned columns for people: numbers
// right-aligned with thousands separators, shares as percentages, times as
// "2006-01-02 15:04", "-" for NULL and empty text), json (an array of objects, one per row, keys in
// column order, times in RFC 3339, NULL and non-finite numbers as null) or
// csv (a header, then raw values; times in RFC 3339, lists as JSON).
func (r *Result) Write(w io.Writer, format string) error {
	switch format {
	case FormatTable:
		return r.writeTable(w)
	case FormatJSON:
		return r.writeJSON(w)
	case FormatCSV:
		return r.writeCSV(w)
	}
	return fmt.Errorf("cannot write the result as %q: want table, json or csv", format)
}

func (r *Result) writeTable(w io.Writer) error {
	cells := make([][]string, 0, len(r.Rows)+1)
	header := make([]string, len(r.Columns))
	for i, c := range r.Columns {
		header[i] = c.Name
	}
	cells = append(cells, header)
	for _, row := range r.Rows {
		line := make([]string, len(row))
		for i, v := range row {
			line[i] = tableCell(r.Columns[i], v)
		}
		cells = append(cells, line)
	}
	widths := make([]int, len(r.Columns))
	for _, line := range cells {
		for i, s := range line {
			widths[i] = max(widths[i], utf8.RuneCountInString(s))
		}
	}
	bw := bufio.NewWriter(w)
	for _, line := range cells {
		for i, s := range line {
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(s))
			if i > 0 {
				bw.WriteString("  ")
			}
			switch {
			case rightAligned(r.Columns[i].Kind):
				bw.WriteString(pad + s)
			case i == len(line)-1:
				bw.WriteString(s) // no trailing blanks
			default:
				bw.WriteString(s + pad)
			}
		}
		bw.WriteByte('\n')
	}
	if len(r.Rows) == 0 {
		bw.WriteString("(no rows)\n")
	}
	return bw.Flush()
}

func rightAligned(k ColumnKind) bool {
	switch k {
	case ColCount, ColNumber, ColPercent, ColFactor:
		return true
	}
	return false
}

// tableCell renders one value for people.
func tableCell(c Column, v any) string {
	if v == nil {
		if c.Null != "" {
			return c.Null
		}
		return "-"
	}
	switch c.Kind {
	case ColCount:
		switch n := v.(type) {
		case uint64:
			return groupThousands(strconv.FormatUint(n, 10))
		case int64:
			return groupThousands(strconv.FormatInt(n, 10))
		}
	case ColNumber:
		if f, ok := toFloat(v); ok {
			return finite(f, func(f float64) string { return groupThousands(strconv.FormatFloat(f, 'f', 2, 64)) })
		}
	case ColPercent:
		if f, ok := toFloat(v); ok {
			return finite(f, func(f float64) string { return strconv.FormatFloat(100*f, 'f', 1, 64) + "%" })
		}
	case ColFactor:
		if f, ok := toFloat(v); ok {
			return finite(f, func(f float64) string { return strconv.FormatFloat(f, 'f', 2, 64) + "x" })
		}
	case ColTime:
		if t, ok := v.(time.Time); ok {
			return t.UTC().Format("2006-01-02 15:04")
		}
	case ColFlag:
		if f, ok := toFloat(v); ok {
			if f != 0 {
				return "yes"
			}
			return "no"
		}
	}
	if s, ok := v.(string); ok {
		if s == "" {
			return "-"
		}
		return s
	}
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Slice {
		parts := make([]string, rv.Len())
		for i := range parts {
			parts[i] = fmt.Sprint(rv.Index(i).Interface())
		}
		return strings.Join(parts, " ")
	}
	return fmt.Sprint(v)
}

func finite(f float64, format func(float64) string) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "-"
	}
	return format(f)
}

func toFloat(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case uint64:
		return float64(n), true
	case int64:
		return float64(n), true
	}
	return 0, false
}

// groupThousands puts commas between groups of three digits of the integer
// part of a decimal number: "-1234567.50" becomes "-1,234,567.50".
func groupThousands(s string) string {
	sign := ""
	if strings.HasPrefix(s, "-") {
		sign, s = "-", s[1:]
	}
	intPart, frac := s, ""
	if i := strings.IndexByte(s, '.'); i >= 0 {
		intPart, frac = s[:i], s[i:]
	}
	var b strings.Builder
	for i, d := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(d)
	}
	return sign + b.String() + frac
}

// jsonValue is v as JSON would carry it.
func jsonValue(v any) any {
	switch x := v.(type) {
	case time.Time:
		return x.UTC().Format(time.RFC3339)
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil
		}
	}
	return v
}

func (r *Result) writeJSON(w io.Writer) error {
	bw := bufio.NewWriter(w)
	bw.WriteString("[")
	for n, row := range r.Rows {
		if n > 0 {
			bw.WriteString(",")
		}
		bw.WriteString("\n  {")
		for i, v := range row {
			if i > 0 {
				bw.WriteString(", ")
			}
			key, _ := json.Marshal(r.Columns[i].Name)
			val, err := json.Marshal(jsonValue(v))
			if err != nil {
				return fmt.Errorf("cannot write column %s as JSON: %w", r.Columns[i].Name, err)
			}
			bw.Write(key)
			bw.WriteString(": ")
			bw.Write(val)
		}
		bw.WriteString("}")
	}
	if len(r.Rows) > 0 {
		bw.WriteString("\n")
	}
	bw.WriteString("]\n")
	return bw.Flush()
}

func (r *Result) writeCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	header := make([]string, len(r.Columns))
	for i, c := range r.Columns {
		header[i] = c.Name
	}
	if err := cw.Write(header); err != nil {
		return err
	}
	for _, row := range r.Rows {
		rec := make([]string, len(row))
		for i, v := range row {
			s, err := csvCell(v)
			if err != nil {
				return fmt.Errorf("cannot write column %s as CSV: %w", r.Columns[i].Name, err)
			}
			rec[i] = s
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

func csvCell(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "", nil
	case string:
		return x, nil
	case time.Time:
		return x.UTC().Format(time.RFC3339), nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return "", nil
		}
		return strconv.FormatFloat(x, 'g', -1, 64), nil
	case uint64:
		return strconv.FormatUint(x, 10), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	}
	b, err := json.Marshal(v)
	return string(b), err
}
