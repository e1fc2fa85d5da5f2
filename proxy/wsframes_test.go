package proxy

import (
	"bytes"
	"slices"
	"testing"
)

func TestFramesBoundaries(t *testing.T) {
	// A text frame of 300 bytes (16-bit length), a ping with 2 bytes, a
	// masked client close frame.
	big := append([]byte{0x81, 126, 0x01, 0x2c}, bytes.Repeat([]byte("x"), 300)...)
	ping := []byte{0x89, 2, 'h', 'i'}
	closeMasked := []byte{0x88, 0x82, 1, 2, 3, 4, 0x02, 0xea}
	stream := append(append(append([]byte{}, big...), ping...), closeMasked...)

	for _, step := range []int{1, 3, 7, 64, len(stream)} {
		var f frames
		var bounds []int
		for i := 0; i < len(stream); i += step {
			p := stream[i:min(i+step, len(stream))]
			for off := 0; off < len(p); {
				k := f.feed(p[off:], true)
				off += k
				if !f.inFrame() {
					bounds = append(bounds, i+off)
				}
			}
		}
		want := []int{len(big), len(big) + len(ping), len(stream)}
		if !slices.Equal(bounds, want) {
			t.Errorf("step %d: boundaries %v, want %v", step, bounds, want)
		}
		if !f.closed {
			t.Errorf("step %d: the close frame went unseen", step)
		}
	}
}

func TestCloseFrame(t *testing.T) {
	want := append([]byte{0x88, 15, 0x03, 0xf0}, "session ended"...)
	if !bytes.Equal(closeFrame, want) {
		t.Fatalf("closeFrame = % x, want % x", closeFrame, want)
	}
}
