package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// WaitSubscribers polls PUBSUB NUMSUB until channel has n subscribers,
// for at most 5 s: go-redis subscribes in the background, and a message
// published before a listener has subscribed never reaches it.
func WaitSubscribers(t testing.TB, rdb redis.UniversalClient, channel string, n int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := rdb.PubSubNumSub(context.Background(), channel).Result()
		if err == nil && got[channel] == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("channel %s: %d subscribers (err %v) after 5 s, want %d", channel, got[channel], err, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
