//go:build !linux

package bff

import "net"

// hangups has no descriptor watcher on this platform: a parked stream
// gets a goroutine that waits for its peer to go away.
type hangups struct{}

func (*hangups) watch(net.Conn, func()) (int32, bool) { return 0, false }

func (*hangups) unwatch(int32) {}
