package logout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"
)

const (
	maxJWKSSize  = 1 << 20          // bounds the JWKS response read
	fetchTimeout = 10 * time.Second // bounds one JWKS fetch
)

var (
	errUnknownKID     = errors.New("key id not in the provider's key set")
	errBadSignature   = errors.New("no key in the provider's key set verifies the signature")
	errRefetchLimited = errors.New("jwks refetch rate limited")
)

// KeySet verifies the signature of a parsed JWS against the OpenID
// Provider's keys. It returns an error wrapping errUnknownKID when the
// token's kid is not among them.
type KeySet interface {
	VerifyJWS(ctx context.Context, jws *jose.JSONWebSignature) error
}

// RemoteKeySetConfig configures a RemoteKeySet.
type RemoteKeySetConfig struct {
	JWKSURL string // required: the OP's jwks_uri
	// RefetchInterval is the minimum time between two JWKS fetches after
	// the first; zero means 10s.
	RefetchInterval time.Duration
	// HTTPClient fetches the JWKS; nil means a client with a 10s timeout.
	HTTPClient *http.Client
}

// RemoteKeySet holds the OP's JWKS: it fetches it on first use, and again
// when no cached key verifies a token (an unknown kid, or a rotated key),
// joining concurrent callers on one fetch. Refetches are bounded: at most
// one JWKS fetch per RefetchInterval, with a burst of one, so a flood of
// tokens with made-up kids or bad signatures cannot make the gateway
// hammer the OP. It serves logout tokens (KeySet, with the JWS parsed
// once by the Verifier) and ID tokens (go-oidc's oidc.KeySet).
type RemoteKeySet struct {
	url    string
	client *http.Client
	lim    *rate.Limiter
	fetch  singleflight.Group

	mu   sync.RWMutex
	keys []jose.JSONWebKey // the last JWKS fetched
}

// NewRemoteKeySet returns a RemoteKeySet for cfg.JWKSURL. It fetches
// nothing until the first token.
func NewRemoteKeySet(cfg RemoteKeySetConfig) (*RemoteKeySet, error) {
	if cfg.JWKSURL == "" {
		return nil, errors.New("jwks_url: is required")
	}
	if cfg.RefetchInterval == 0 {
		cfg.RefetchInterval = 10 * time.Second
	}
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	return &RemoteKeySet{
		url:    cfg.JWKSURL,
		client: client,
		lim:    rate.NewLimiter(rate.Every(cfg.RefetchInterval), 1),
	}, nil
}

// VerifySignature implements go-oidc's oidc.KeySet (ID tokens: go-oidc
// has already pinned the algorithm).
func (ks *RemoteKeySet) VerifySignature(ctx context.Context, jwt string) ([]byte, error) {
	jws, err := jose.ParseSignedCompact(jwt, asymmetricJOSE)
	if err != nil {
		return nil, fmt.Errorf("parse jws: %w", err)
	}
	if err := ks.VerifyJWS(ctx, jws); err != nil {
		return nil, err
	}
	return jws.UnsafePayloadWithoutVerification(), nil
}

// VerifyJWS implements KeySet: the cached keys first, then, if none
// verifies, one refetch if the rate limit allows it.
func (ks *RemoteKeySet) VerifyJWS(ctx context.Context, jws *jose.JSONWebSignature) error {
	kid := jws.Signatures[0].Header.KeyID
	ks.mu.RLock()
	keys := ks.keys
	ks.mu.RUnlock()
	if verifyWith(jws, kid, keys) {
		return nil
	}
	keys, ferr := ks.refetch(ctx)
	if ferr == nil && verifyWith(jws, kid, keys) {
		return nil
	}
	ks.mu.RLock()
	keys = ks.keys
	ks.mu.RUnlock()
	err := errBadSignature
	if !hasKID(keys, kid) {
		err = errUnknownKID
	}
	if ferr != nil {
		return fmt.Errorf("%w (refetch: %w)", err, ferr)
	}
	return err
}

// verifyWith reports whether a key of keys with the token's kid (any key
// when the token has none) verifies the signature.
func verifyWith(jws *jose.JSONWebSignature, kid string, keys []jose.JSONWebKey) bool {
	for i := range keys {
		k := &keys[i]
		if (kid != "" && k.KeyID != kid) || k.Use == "enc" {
			continue
		}
		if _, err := jws.Verify(k); err == nil {
			return true
		}
	}
	return false
}

// hasKID reports whether kid is in keys; a token without kid counts as
// known once any key was fetched.
func hasKID(keys []jose.JSONWebKey, kid string) bool {
	if kid == "" {
		return len(keys) > 0
	}
	for _, k := range keys {
		if k.KeyID == kid {
			return true
		}
	}
	return false
}

// refetch fetches the JWKS once for all concurrent callers, unless the
// rate limit forbids it. The fetch is not canceled with the caller's ctx
// (others may be waiting on it); fetchTimeout bounds it.
func (ks *RemoteKeySet) refetch(ctx context.Context) ([]jose.JSONWebKey, error) {
	ch := ks.fetch.DoChan("jwks", func() (any, error) {
		if !ks.lim.Allow() {
			return nil, errRefetchLimited
		}
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
		defer cancel()
		keys, err := ks.get(fctx)
		if err != nil {
			return nil, err
		}
		ks.mu.Lock()
		ks.keys = keys
		ks.mu.Unlock()
		return keys, nil
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.([]jose.JSONWebKey), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (ks *RemoteKeySet) get(ctx context.Context) ([]jose.JSONWebKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ks.url, nil)
	if err != nil {
		return nil, fmt.Errorf("jwks request: %w", err)
	}
	resp, err := ks.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch jwks: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch jwks: status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSSize))
	if err != nil {
		return nil, fmt.Errorf("read jwks: %w", err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("decode jwks: %w", err)
	}
	return set.Keys, nil
}
