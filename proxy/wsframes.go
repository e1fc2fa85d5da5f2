package proxy

import "encoding/binary"

// frames follows the frame boundaries of one direction of a WebSocket
// connection (RFC 6455 §5.2) without buffering payloads, so that the
// gateway can put its own close frame between two frames of the
// upstream's, and can tell when the browser answered it.
type frames struct {
	hdr  [14]byte
	n    int    // header bytes seen of the current frame
	left uint64 // payload bytes still to come of the current frame
	op   byte   // opcode of the current frame
	// closed is set once a whole close frame went by.
	closed bool
}

// inFrame reports whether the bytes so far end inside a frame.
func (f *frames) inFrame() bool { return f.n > 0 || f.left > 0 }

// feed follows p. With stop, it stops at the first frame boundary it
// reaches and returns how many bytes of p belong to the frame under way.
func (f *frames) feed(p []byte, stop bool) int {
	i := 0
	for i < len(p) {
		if f.left > 0 {
			k := min(uint64(len(p)-i), f.left)
			i += int(k)
			f.left -= k
			if f.left == 0 && f.end() && stop {
				return i
			}
			continue
		}
		f.hdr[f.n] = p[i]
		f.n++
		i++
		if need := f.headerLen(); need > 0 && f.n == need {
			f.left, f.op, f.n = f.payloadLen(), f.hdr[0]&0x0f, 0
			if f.left == 0 && f.end() && stop {
				return i
			}
		}
	}
	return i
}

// end records the end of a frame; it always reports true.
func (f *frames) end() bool {
	if f.op == 0x8 {
		f.closed = true
	}
	return true
}

// headerLen is the length of the current frame's header, 0 while not
// known yet.
func (f *frames) headerLen() int {
	if f.n < 2 {
		return 0
	}
	n := 2
	switch f.hdr[1] & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if f.hdr[1]&0x80 != 0 { // masked: a client's frame
		n += 4
	}
	return n
}

func (f *frames) payloadLen() uint64 {
	switch l := f.hdr[1] & 0x7f; l {
	case 126:
		return uint64(binary.BigEndian.Uint16(f.hdr[2:4]))
	case 127:
		return binary.BigEndian.Uint64(f.hdr[2:10])
	default:
		return uint64(l)
	}
}

// CloseSessionEnded is the close code the gateway sends on a WebSocket
// whose session ended (1008, policy violation), with closeReason.
const (
	CloseSessionEnded = 1008
	closeReason       = "session ended"
)

// closeFrame is the server-to-client (unmasked) close frame with code
// 1008 and reason "session ended"; goingAwayFrame says 1001 "going away"
// (the gateway shuts down: reconnect).
var (
	closeFrame     = newCloseFrame(CloseSessionEnded, closeReason)
	goingAwayFrame = newCloseFrame(1001, "going away")
)

// newCloseFrame returns an unmasked close frame (reason under 124 bytes).
func newCloseFrame(code uint16, reason string) []byte {
	b := []byte{0x88, byte(2 + len(reason)), 0, 0}
	binary.BigEndian.PutUint16(b[2:], code)
	return append(b, reason...)
}
