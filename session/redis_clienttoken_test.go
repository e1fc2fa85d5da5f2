package session_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/bffgate/bffgate/session"
)

func TestRedisClientTokens(t *testing.T) {
	rdb := newRedisClient(t, nil)
	ctx := context.Background()
	a, err := session.NewRedisClientTokens(rdb, redisSecret)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := session.NewRedisClientTokens(rdb, redisSecret)
	key := "k-" + session.NewID()[:12]

	if _, ok, err := a.GetClientToken(ctx, key); ok || err != nil {
		t.Fatalf("empty: ok %v, err %v; want absent", ok, err)
	}
	now := time.Now().Truncate(time.Second)
	want := session.ClientToken{AccessToken: "client-token-secret-value", Expiry: now.Add(time.Minute), Issued: now}
	if err := a.PutClientToken(ctx, key, want); err != nil {
		t.Fatal(err)
	}
	got, ok, err := b.GetClientToken(ctx, key)
	if err != nil || !ok || got.AccessToken != want.AccessToken || !got.Expiry.Equal(want.Expiry) || !got.Issued.Equal(want.Issued) {
		t.Errorf("another replica reads %+v, %v, %v; want %+v", got, ok, err, want)
	}
	raw, _ := rdb.Get(ctx, "bffgate:ct:"+key).Result()
	if strings.Contains(raw, want.AccessToken) {
		t.Error("the token is stored in the clear")
	}
	if ttl := rdb.PTTL(ctx, "bffgate:ct:"+key).Val(); ttl <= 0 || ttl > time.Minute {
		t.Errorf("TTL = %v, want the token's remaining lifetime (≤ 1m)", ttl)
	}
	other, _ := session.NewRedisClientTokens(rdb, "another-secret-0123456789abcdef-xyz")
	if _, ok, err := other.GetClientToken(ctx, key); ok || err != nil {
		t.Errorf("another secret: ok %v, err %v; want absent (it does not decrypt)", ok, err)
	}

	// One claim at a time; only its holder releases it.
	if ok, err := a.ClaimClientToken(ctx, key, time.Minute); !ok || err != nil {
		t.Fatalf("first claim: %v, %v; want true", ok, err)
	}
	if ok, _ := b.ClaimClientToken(ctx, key, time.Minute); ok {
		t.Error("second claim while held: true, want false")
	}
	if err := b.ReleaseClientToken(ctx, key); err != nil {
		t.Fatal(err)
	}
	if ok, _ := b.ClaimClientToken(ctx, key, time.Minute); ok {
		t.Error("a replica released another's claim")
	}
	if err := a.ReleaseClientToken(ctx, key); err != nil {
		t.Fatal(err)
	}
	if ok, _ := b.ClaimClientToken(ctx, key, time.Minute); !ok {
		t.Error("claim after the holder released it: false, want true")
	}
}
