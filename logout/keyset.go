package logout

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/time/rate"
)

// maxJWKSSize bounds the JWKS response read.
const maxJWKSSize = 1 << 20

var (
	errUnknownKID     = errors.New("key id not in the provider's key set")
	errRefetchLimited = errors.New("jwks refetch rate limited")
)

// RemoteKeySetConfig configures a RemoteKeySet.
type RemoteKeySetConfig struct {
	JWKSURL string // required: the OP's jwks_uri
	// RefetchInterval is the minimum time between two JWKS fetches after
	// the first; zero means 10s.
	RefetchInterval time.Duration
	// HTTPClient fetches the JWKS; nil means a client with a 10s timeout.
	// Its Transport is wrapped, not modified.
	HTTPClient *http.Client
}

// RemoteKeySet is an oidc.KeySet over go-oidc's RemoteKeySet (which caches
// the OP's keys and refetches on an unknown kid or a failed signature) that
// bounds those refetches: at most one JWKS fetch per RefetchInterval, with a
// burst of one, so a flood of tokens with made-up kids or bad signatures
// cannot make the gateway hammer the OP. A token whose kid is not in the
// last JWKS fetched, while no fetch is allowed, fails with unknown_kid
// without reaching go-oidc.
type RemoteKeySet struct {
	remote *oidc.RemoteKeySet
	lim    *rate.Limiter

	mu   sync.RWMutex
	kids map[string]bool // the kids of the last JWKS fetched
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
	base := cfg.HTTPClient
	if base == nil {
		base = &http.Client{Timeout: 10 * time.Second}
	}
	ks := &RemoteKeySet{lim: rate.NewLimiter(rate.Every(cfg.RefetchInterval), 1)}
	client := *base
	client.Transport = &limitedTransport{ks: ks, base: base.Transport}
	ks.remote = oidc.NewRemoteKeySet(oidc.ClientContext(context.Background(), &client), cfg.JWKSURL)
	return ks, nil
}

// VerifySignature implements oidc.KeySet.
func (ks *RemoteKeySet) VerifySignature(ctx context.Context, jwt string) ([]byte, error) {
	jws, err := jose.ParseSignedCompact(jwt, allAlgs)
	if err != nil {
		return nil, fmt.Errorf("parse jws: %w", err)
	}
	kid := jws.Signatures[0].Header.KeyID
	// go-oidc tries its cached keys first and joins concurrent callers on
	// one fetch; the transport below refuses fetches over the limit.
	payload, err := ks.remote.VerifySignature(ctx, jwt)
	if err != nil && !ks.known(kid) {
		return nil, fmt.Errorf("%w: %w", errUnknownKID, err)
	}
	return payload, err
}

// known reports whether kid was in the last JWKS; a token without kid
// counts as known once any JWKS was fetched.
func (ks *RemoteKeySet) known(kid string) bool {
	ks.mu.RLock()
	defer ks.mu.RUnlock()
	if kid == "" {
		return len(ks.kids) > 0
	}
	return ks.kids[kid]
}

// limitedTransport enforces the refetch limit on every JWKS request go-oidc
// makes, and notes the kids of each JWKS it fetches.
type limitedTransport struct {
	ks   *RemoteKeySet
	base http.RoundTripper
}

func (t *limitedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !t.ks.lim.Allow() {
		return nil, errRefetchLimited
	}
	base := t.base
	if base == nil {
		base = http.DefaultTransport
	}
	resp, err := base.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSSize))
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("read jwks: %w", err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	var set struct {
		Keys []struct {
			KID string `json:"kid"`
		} `json:"keys"`
	}
	if json.Unmarshal(body, &set) == nil {
		kids := make(map[string]bool, len(set.Keys))
		for _, k := range set.Keys {
			kids[k.KID] = true
		}
		t.ks.mu.Lock()
		t.ks.kids = kids
		t.ks.mu.Unlock()
	}
	return resp, nil
}

var allAlgs = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA, jose.HS256, jose.HS384, jose.HS512,
}

// keySet is the oidc.KeySet the Verifier gives go-oidc (which has already
// pinned alg to SigningAlgs): HS* are checked with the client secret and
// nothing else, the rest go to the configured KeySet. It reports the
// outcome to the probe in ctx so Verify can name the failed step.
type keySet struct {
	inner  oidc.KeySet
	secret []byte
}

type probeKey struct{}

// probe is one Verify call's view of the signature step.
type probe struct {
	called  bool
	payload []byte
	reason  string
	err     error
}

func (k *keySet) VerifySignature(ctx context.Context, jwt string) ([]byte, error) {
	payload, err := k.verify(ctx, jwt)
	if p, ok := ctx.Value(probeKey{}).(*probe); ok {
		p.called, p.payload, p.err = true, payload, err
		if errors.Is(err, errUnknownKID) {
			p.reason = ReasonUnknownKID
		}
	}
	return payload, err
}

func (k *keySet) verify(ctx context.Context, jwt string) ([]byte, error) {
	jws, err := jose.ParseSignedCompact(jwt, allAlgs)
	if err != nil {
		return nil, fmt.Errorf("parse jws: %w", err)
	}
	if alg := jws.Signatures[0].Header.Algorithm; strings.HasPrefix(alg, "HS") {
		if k.secret == nil {
			return nil, errors.New("no client secret for HMAC")
		}
		return jws.Verify(k.secret)
	}
	if k.inner == nil {
		return nil, errors.New("no key set for asymmetric signatures")
	}
	return k.inner.VerifySignature(ctx, jwt)
}
