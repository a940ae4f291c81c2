// Command worldmap makes the offline world outline of the web inbox's map
// page (web/map_world.txt) from a Natural Earth 1:110m countries shapefile.
//
// Natural Earth is in the public domain. Debian 12 ships the 1:110m
// countries (naturalearth_lowres) inside python3-geopandas 0.12.2:
//
//	apt-get download python3-geopandas && dpkg-deb -x python3-geopandas_*.deb x
//	go run ./tools/worldmap -shp x/usr/lib/python3/dist-packages/geopandas/datasets/naturalearth_lowres/naturalearth_lowres.shp > web/map_world.txt
//
// The output is SVG path data, one country ring per line, in tenths of a
// degree: x = (lon+180)*10, y = (90-lat)*10, simplified to about a fifth
// of a degree (Douglas-Peucker), rings under a few points dropped.
package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
)

func main() {
	shp := flag.String("shp", "", "the Natural Earth .shp file")
	tol := flag.Float64("tolerance", 2, "simplification tolerance, in tenths of a degree")
	flag.Parse()
	if err := run(*shp, *tol, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "worldmap:", err)
		os.Exit(1)
	}
}

type pt struct{ x, y float64 }

func run(path string, tol float64, out io.Writer) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(out)
	fmt.Fprintln(w, "# Natural Earth 1:110m countries (public domain), via tools/worldmap: SVG path data in tenths of a degree")
	rings, points, err := convert(b, tol, w)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	fmt.Fprintf(os.Stderr, "worldmap: %d rings, %d points\n", rings, points)
	return w.Flush()
}

// convert writes the polygons of shapefile b as SVG path data, one ring a
// line. Every offset is checked against the file before it is read.
func convert(b []byte, tol float64, w io.Writer) (rings, points int, err error) {
	if len(b) < 100 || binary.BigEndian.Uint32(b) != 9994 {
		return 0, 0, errors.New("not a shapefile")
	}
	for off := 100; off < len(b); {
		if off+8 > len(b) {
			return 0, 0, fmt.Errorf("record header at %d is cut short", off)
		}
		n := int(binary.BigEndian.Uint32(b[off+4:])) * 2
		if n < 4 || n > len(b)-off-8 {
			return 0, 0, fmt.Errorf("record at %d: bad length %d", off, n)
		}
		rec := b[off+8 : off+8+n]
		off += 8 + n
		if binary.LittleEndian.Uint32(rec) != 5 { // not a polygon
			continue
		}
		if len(rec) < 44 {
			return 0, 0, errors.New("polygon record cut short")
		}
		parts := int(binary.LittleEndian.Uint32(rec[36:]))
		npts := int(binary.LittleEndian.Uint32(rec[40:]))
		base := 44 + 4*parts
		if parts < 0 || npts < 0 || parts > len(rec)/4 || npts > len(rec)/16 || base+16*npts > len(rec) {
			return 0, 0, fmt.Errorf("polygon of %d parts and %d points does not fit its record", parts, npts)
		}
		idx := make([]int, parts+1)
		for i := range parts {
			idx[i] = int(binary.LittleEndian.Uint32(rec[44+4*i:]))
		}
		idx[parts] = npts
		for p := range parts {
			if idx[p] < 0 || idx[p] > idx[p+1] {
				return 0, 0, fmt.Errorf("part %d starts at point %d", p, idx[p])
			}
			var ring []pt
			for i := idx[p]; i < idx[p+1]; i++ {
				x := math.Float64frombits(binary.LittleEndian.Uint64(rec[base+16*i:]))
				y := math.Float64frombits(binary.LittleEndian.Uint64(rec[base+16*i+8:]))
				if math.IsNaN(x) || math.IsNaN(y) || math.Abs(x) > 180.001 || math.Abs(y) > 90.001 {
					return 0, 0, fmt.Errorf("point %v,%v is not a longitude and latitude", x, y)
				}
				x, y = max(-180, min(180, x)), max(-90, min(90, y)) // rounding errors of the source
				ring = append(ring, pt{(x + 180) * 10, (90 - y) * 10})
			}
			ring = simplify(ring, tol)
			if len(ring) < 4 {
				continue
			}
			rings++
			points += len(ring)
			for i, q := range ring {
				cmd := "L"
				if i == 0 {
					cmd = "M"
				}
				fmt.Fprintf(w, "%s%d %d", cmd, int(math.Round(q.x)), int(math.Round(q.y)))
			}
			fmt.Fprintln(w, "Z")
		}
	}
	return rings, points, nil
}

// simplify is Douglas-Peucker on a closed ring.
func simplify(r []pt, tol float64) []pt {
	if len(r) < 4 {
		return r
	}
	keep := make([]bool, len(r))
	keep[0], keep[len(r)-1] = true, true
	var dp func(a, b int)
	dp = func(a, b int) {
		best, at := 0.0, -1
		for i := a + 1; i < b; i++ {
			if d := dist(r[i], r[a], r[b]); d > best {
				best, at = d, i
			}
		}
		if at >= 0 && best > tol {
			keep[at] = true
			dp(a, at)
			dp(at, b)
		}
	}
	// A closed ring starts and ends at the same point: split it at the
	// point farthest from the start.
	far, fd := 0, 0.0
	for i, q := range r {
		if d := math.Hypot(q.x-r[0].x, q.y-r[0].y); d > fd {
			far, fd = i, d
		}
	}
	keep[far] = true
	dp(0, far)
	dp(far, len(r)-1)
	var out []pt
	for i, k := range keep {
		if k {
			out = append(out, r[i])
		}
	}
	return out
}

func dist(p, a, b pt) float64 {
	dx, dy := b.x-a.x, b.y-a.y
	l := dx*dx + dy*dy
	if l == 0 {
		return math.Hypot(p.x-a.x, p.y-a.y)
	}
	t := math.Max(0, math.Min(1, ((p.x-a.x)*dx+(p.y-a.y)*dy)/l))
	return math.Hypot(p.x-(a.x+t*dx), p.y-(a.y+t*dy))
}
