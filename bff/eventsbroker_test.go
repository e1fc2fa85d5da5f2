package bff

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func testBroker() *broker {
	return newBroker(ConnLimits{MaxEventStreams: 100000, MaxEventStreamsPerUser: 100000}, &fakeSessions{}, prometheus.NewRegistry())
}

func beats(st *stream) bool {
	select {
	case <-st.beat:
		return true
	default:
		return false
	}
}

// TestHeartbeatSharedWheel: a stream gets its heartbeat about one interval
// after it opens (never later), and then once per interval; streams
// opened at different moments beat at different moments, from one ticker.
func TestHeartbeatSharedWheel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := testBroker()
		tick := heartbeatEvery / wheelSlots
		a, _ := b.subscribe("s1", "u1")
		time.Sleep(tick * 10)
		c, _ := b.subscribe("s2", "u2")
		time.Sleep(heartbeatEvery - tick*10 - tick)
		synctest.Wait()
		if beats(a) || beats(c) {
			t.Fatal("a heartbeat before one interval")
		}
		time.Sleep(tick)
		synctest.Wait()
		if !beats(a) {
			t.Fatal("no heartbeat for a after one interval")
		}
		if beats(c) {
			t.Fatal("c beat together with a, though opened 10 ticks later")
		}
		time.Sleep(tick * 10)
		synctest.Wait()
		if !beats(c) {
			t.Fatal("no heartbeat for c one interval after it opened")
		}
		time.Sleep(heartbeatEvery - tick*10)
		synctest.Wait()
		if !beats(a) {
			t.Fatal("no second heartbeat for a")
		}
		b.unsubscribe("s1", "u1", a)
		b.unsubscribe("s2", "u2", c)
		// The ticker stops with the last stream: synctest.Test fails if
		// its goroutine were left running.
	})
}

// TestHeartbeatWheelAtRest: with no stream open the broker runs no timer,
// and it starts again with the next stream.
func TestHeartbeatWheelAtRest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := testBroker()
		a, _ := b.subscribe("s1", "u1")
		b.unsubscribe("s1", "u1", a)
		if b.stopWheel != nil {
			t.Fatal("the wheel still runs with no stream open")
		}
		time.Sleep(3 * heartbeatEvery)
		a, _ = b.subscribe("s1", "u1")
		time.Sleep(heartbeatEvery)
		synctest.Wait()
		if !beats(a) {
			t.Fatal("no heartbeat after the wheel restarted")
		}
		b.unsubscribe("s1", "u1", a)
	})
}

// TestPublishOnlyTheSession: an end reaches the streams of its session
// and no other; a slow stream never blocks the wheel or a publish.
func TestPublishOnlyTheSession(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := testBroker()
		x1, _ := b.subscribe("x", "u")
		x2, _ := b.subscribe("x", "u")
		y, _ := b.subscribe("y", "v")
		b.publish("x", "backchannel")
		b.publish("x", "backchannel") // full channels: dropped, not blocked
		for _, st := range []*stream{x1, x2} {
			select {
			case c := <-st.ended:
				if c != "backchannel" {
					t.Errorf("cause %q", c)
				}
			default:
				t.Error("a stream of x missed its end")
			}
		}
		select {
		case <-y.ended:
			t.Error("y was told x ended")
		default:
		}
		time.Sleep(3 * heartbeatEvery) // nobody reads beat: never blocks
		synctest.Wait()
		for _, st := range []*stream{x1, x2, y} {
			b.unsubscribe(map[*stream]string{x1: "x", x2: "x", y: "y"}[st], map[*stream]string{x1: "u", x2: "u", y: "v"}[st], st)
		}
		if b.total != 0 || len(b.subs) != 0 || len(b.perUser) != 0 {
			t.Errorf("after unsubscribing all: total %d subs %d users %d", b.total, len(b.subs), len(b.perUser))
		}
		for i, m := range b.wheel {
			if len(m) != 0 {
				t.Errorf("wheel bucket %d keeps %d streams", i, len(m))
			}
		}
	})
}
