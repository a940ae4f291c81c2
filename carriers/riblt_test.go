package carriers

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func testChecker(k uint64) uint32 { return uint32(splitmix64(k ^ 0x5eed)) }

// decodeDifference runs the sender's symbols into a decoder until it
// decodes, and returns how many symbols it took.
func decodeDifference(t *testing.T, remote, local []uint64, limit int) (int, *symbolDecoder) {
	t.Helper()
	enc := newSymbolEncoder(remote, testChecker)
	dec := newSymbolDecoder(local, testChecker)
	for dec.received() < limit {
		if dec.add(enc.produce(1)) {
			return dec.received(), dec
		}
	}
	t.Fatalf("no decode after %d symbols", limit)
	return 0, nil
}

func TestRIBLTDecodesDifference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, d := range []int{0, 1, 2, 10, 100, 1000} {
		common := make([]uint64, 5000)
		for i := range common {
			common[i] = rng.Uint64()
		}
		var onlyR, onlyL []uint64
		for i := 0; i < d; i++ {
			if i%2 == 0 {
				onlyR = append(onlyR, rng.Uint64())
			} else {
				onlyL = append(onlyL, rng.Uint64())
			}
		}
		n, dec := decodeDifference(t, append(slices.Clone(common), onlyR...), append(slices.Clone(common), onlyL...), 10*d+50)
		got, gotL := slices.Sorted(slices.Values(dec.remote)), slices.Sorted(slices.Values(dec.localO))
		slices.Sort(onlyR)
		slices.Sort(onlyL)
		if !slices.Equal(got, onlyR) || !slices.Equal(gotL, onlyL) {
			t.Fatalf("d=%d: decoded %d/%d keys, want %d/%d", d, len(got), len(gotL), len(onlyR), len(onlyL))
		}
		t.Logf("d=%d: %d symbols (%.2f per item)", d, n, float64(n)/float64(max(d, 1)))
	}
}

// TestMappingGolden pins the symbol mapping: both ends of a session must
// map a key to the same indices, on every platform and in every version.
func TestMappingGolden(t *testing.T) {
	m := newMapping(42)
	got := []uint64{m.last}
	for range 8 {
		got = append(got, m.next())
	}
	want := []uint64{0, 4, 12, 16, 23, 33, 86, 136, 171}
	if !slices.Equal(got, want) {
		t.Fatalf("mapping of 42 = %v, want %v", got, want)
	}
}
