package loadgen

import (
	"bytes"
	"encoding/csv"
	"math"
	"slices"
	"strconv"
	"testing"
	"time"
)

func TestCSVWriter(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewCSVWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	in := []Record{
		{Start: 1500 * time.Microsecond, Latency: 12345678 * time.Nanosecond, Status: 200, Bytes: 42, Users: 3, InFlight: 2},
		{Start: time.Second, Latency: time.Millisecond, Status: 0, Err: `dial tcp: "refused", again`},
	}
	for _, r := range in {
		w.Add(r)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatalf("read back: %v\n%s", err, buf.String())
	}
	if len(rows) != 1+len(in) || !slices.Equal(rows[0], CSVHeader) {
		t.Fatalf("rows %q, want header %q and %d records", rows, CSVHeader, len(in))
	}
	for i, r := range in {
		row := rows[i+1]
		start, err1 := strconv.ParseFloat(row[0], 64)
		lat, err2 := strconv.ParseFloat(row[1], 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("row %d: %q: times do not parse", i, row)
		}
		if got := time.Duration(math.Round(start*1e3)) * time.Microsecond; got != r.Start.Round(time.Microsecond) {
			t.Errorf("row %d start %v, want %v", i, got, r.Start)
		}
		if got := time.Duration(math.Round(lat*1e3)) * time.Microsecond; got != r.Latency.Round(time.Microsecond) {
			t.Errorf("row %d latency %v, want %v", i, got, r.Latency.Round(time.Microsecond))
		}
		want := []string{strconv.Itoa(r.Status), strconv.FormatInt(r.Bytes, 10), strconv.Itoa(r.Users), strconv.Itoa(r.InFlight), r.Err}
		if !slices.Equal(row[2:], want) {
			t.Errorf("row %d = %q, want %q", i, row[2:], want)
		}
	}
}
