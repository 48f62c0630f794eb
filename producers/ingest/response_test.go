package ingest

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestAppendResponseWritesWhatEncodingJSONWrites(t *testing.T) {
	check := func(resp Response) {
		t.Helper()
		var buf bytes.Buffer
		appendResponse(&buf, &resp)
		want, err := json.Marshal(resp)
		if err != nil {
			t.Fatal(err)
		}
		if got := buf.String(); got != string(want)+"\n" {
			t.Errorf("appendResponse wrote\n%s\nencoding/json writes\n%s", got, want)
		}
	}
	check(Response{Events: []EventStatus{}})
	check(Response{Accepted: 1, Events: []EventStatus{{Index: 0, ID: "e-1", Status: StatusAccepted}}})
	check(Response{Accepted: 1, Rejected: 1, Events: []EventStatus{
		{Index: 0, ID: "e-1", Status: StatusAccepted},
		{Index: 1, Status: StatusRejected, Field: "t", Reason: `the time is "late" <by> 3 s & more \ so`},
	}})
	check(Response{Rejected: 1, Events: []EventStatus{{Index: 7, ID: "ünïcödé\u2028\x7f\x00\x1f", Status: StatusRejected, Reason: "invalid \xff\xfe UTF-8"}}})
	var all []byte
	for c := range 256 {
		all = append(all, byte(c))
		check(Response{Events: []EventStatus{{ID: "a" + string(rune(c)) + "b", Status: "x" + string([]byte{byte(c)})}}})
	}
	check(Response{Events: []EventStatus{{ID: string(all), Status: StatusRejected, Reason: string(all)}}})
}
