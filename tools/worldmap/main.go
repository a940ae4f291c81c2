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
	if len(b) < 100 || binary.BigEndian.Uint32(b) != 9994 {
		return fmt.Errorf("%s is not a shapefile", path)
	}
	w := bufio.NewWriter(out)
	fmt.Fprintln(w, "# Natural Earth 1:110m countries (public domain), via tools/worldmap: SVG path data in tenths of a degree")
	rings, points := 0, 0
	for off := 100; off+8 <= len(b); {
		n := int(binary.BigEndian.Uint32(b[off+4:])) * 2
		rec := b[off+8 : off+8+n]
		off += 8 + n
		if binary.LittleEndian.Uint32(rec) != 5 { // polygon
			continue
		}
		parts := int(binary.LittleEndian.Uint32(rec[36:]))
		npts := int(binary.LittleEndian.Uint32(rec[40:]))
		idx := make([]int, parts+1)
		for i := range parts {
			idx[i] = int(binary.LittleEndian.Uint32(rec[44+4*i:]))
		}
		idx[parts] = npts
		base := 44 + 4*parts
		for p := range parts {
			var ring []pt
			for i := idx[p]; i < idx[p+1]; i++ {
				x := math.Float64frombits(binary.LittleEndian.Uint64(rec[base+16*i:]))
				y := math.Float64frombits(binary.LittleEndian.Uint64(rec[base+16*i+8:]))
				ring = append(ring, pt{(x + 180) * 10, (90 - y) * 10})
			}
			ring = simplify(ring, tol)
			if len(ring) < 4 {
				continue
			}
			rings++
			points += len(ring)
			for i, q := range ring {
				if i == 0 {
					fmt.Fprintf(w, "M%d %d", int(math.Round(q.x)), int(math.Round(q.y)))
				} else {
					fmt.Fprintf(w, "L%d %d", int(math.Round(q.x)), int(math.Round(q.y)))
				}
			}
			fmt.Fprintln(w, "Z")
		}
	}
	fmt.Fprintf(os.Stderr, "worldmap: %d rings, %d points\n", rings, points)
	return w.Flush()
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
