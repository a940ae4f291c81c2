package main

import (
	"bytes"
	"encoding/binary"
	"math"
	"strings"
	"testing"
)

// shapefile makes a shapefile of one polygon with one ring.
func shapefile(ring [][2]float64) []byte {
	rec := binary.LittleEndian.AppendUint32(nil, 5)
	rec = append(rec, make([]byte, 32)...) // bounding box, unread
	rec = binary.LittleEndian.AppendUint32(rec, 1)
	rec = binary.LittleEndian.AppendUint32(rec, uint32(len(ring)))
	rec = binary.LittleEndian.AppendUint32(rec, 0)
	for _, p := range ring {
		rec = binary.LittleEndian.AppendUint64(rec, math.Float64bits(p[0]))
		rec = binary.LittleEndian.AppendUint64(rec, math.Float64bits(p[1]))
	}
	b := make([]byte, 100)
	binary.BigEndian.PutUint32(b, 9994)
	b = binary.BigEndian.AppendUint32(b, 1)
	b = binary.BigEndian.AppendUint32(b, uint32(len(rec)/2))
	return append(b, rec...)
}

func TestConvert(t *testing.T) {
	// A square 10° across, with a point on one side that simplifies away.
	b := shapefile([][2]float64{{0, 0}, {0, 10}, {5, 10.01}, {10, 10}, {10, 0}, {0, 0}})
	var out bytes.Buffer
	rings, points, err := convert(b, 2, &out)
	if err != nil {
		t.Fatal(err)
	}
	if want := "M1800 900L1800 800L1900 800L1900 900L1800 900Z\n"; out.String() != want || rings != 1 || points != 5 {
		t.Errorf("got %d rings, %d points: %q, want %q", rings, points, out.String(), want)
	}
	for _, bad := range [][]byte{nil, b[:120], append(b[:len(b):len(b)], 1, 2, 3)} {
		if _, _, err := convert(bad, 2, &out); err == nil {
			t.Errorf("a damaged file (%d bytes) converted", len(bad))
		}
	}
	if _, _, err := convert(shapefile([][2]float64{{0, 0}, {0, 95}, {1, 1}, {0, 0}}), 2, &out); err == nil || !strings.Contains(err.Error(), "latitude") {
		t.Errorf("a point at 95°N: %v", err)
	}
}

func FuzzConvert(f *testing.F) {
	f.Add(shapefile([][2]float64{{0, 0}, {0, 10}, {10, 10}, {10, 0}, {0, 0}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		convert(b, 2, &bytes.Buffer{}) // must not panic
	})
}
