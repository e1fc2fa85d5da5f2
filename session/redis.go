package session

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// gcSlack is how long after its logical expiry Redis keeps a key, so that
// replicas whose clocks run a little behind still agree.
const gcSlack = time.Minute

// RedisConfig configures a RedisStore.
type RedisConfig struct {
	Timeouts Timeouts
	// Secret is the session secret; the key that encrypts tokens at rest
	// is derived from it. Required, at least 32 bytes.
	Secret string
	// Now is the store's clock for every expiry decision; default
	// time.Now. Redis TTLs derived from it only collect garbage.
	Now func() time.Time
	// Logger logs the broadcast listener's problems; nil discards them.
	Logger *slog.Logger
	// Cache configures the local cache of session records (on unless
	// Cache.Off).
	Cache CacheConfig
	// Registerer, if not nil, registers the cache's metrics
	// (bffgate_session_cache_*).
	Registerer prometheus.Registerer
}

// RedisStore is the Store that replicas share: sessions, indexes and
// tombstones live in Redis (see redis_scripts.go for the keys), written by
// Lua scripts so that each change is atomic. Tokens and claims are
// encrypted at rest (AES-256-GCM). It also broadcasts sessions ended on
// this replica to the others over pub/sub, for Manager (see Broadcast).
//
// It keeps a local copy of the sessions read recently (redis_cache.go),
// which an invalidation channel keeps right (redis_inval.go states the
// guarantee): a session ended on any replica is refused by every replica
// as soon as the ending call returns, and the cache is bypassed whenever
// that channel is not known to work.
type RedisStore struct {
	rdb      redis.UniversalClient
	timeouts Timeouts
	now      func() time.Time
	crypt    *tokenCipher
	prefix   string
	channel  string
	origin   string // this store's id in broadcasts, to skip its own
	log      *slog.Logger

	invChannel string
	cacheCfg   CacheConfig
	cache      *recordCache // nil if off
	beat       time.Duration
	inv        invalidation
	metrics    *cacheMetrics
	wg         sync.WaitGroup

	onRemMu   sync.RWMutex
	onRemote  func(cause Cause, id string)
	cancel    context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
}

var _ Store = (*RedisStore)(nil)

// NewRedisStore returns a store on rdb and starts its broadcast listener;
// Close stops it. The caller owns rdb and closes it after the store.
func NewRedisStore(rdb redis.UniversalClient, cfg RedisConfig) (*RedisStore, error) {
	c, err := newTokenCipher(cfg.Secret)
	if err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	p := keyPrefix(rdb)
	cc := cfg.Cache.withDefaults()
	st := &RedisStore{
		rdb:        rdb,
		timeouts:   cfg.Timeouts.withDefaults(),
		now:        cfg.Now,
		crypt:      c,
		prefix:     p,
		channel:    p + "ended",
		invChannel: p + "inv",
		origin:     NewID()[:16],
		log:        cfg.Logger,
		cacheCfg:   cc,
		beat:       cc.TTL / 4,
		done:       make(chan struct{}),
	}
	if err := st.startInvalidation(cc, cfg.Registerer); err != nil {
		return nil, err
	}
	return st, nil
}

// keyPrefix is "bffgate:", or "{bffgate}:" on a Cluster: the scripts
// touch several keys, which a Cluster allows only within one hash slot.
func keyPrefix(rdb redis.UniversalClient) string {
	if _, ok := rdb.(*redis.ClusterClient); ok {
		return "{bffgate}:"
	}
	return "bffgate:"
}

// stamp formats t for the scripts: Unix nanoseconds, 20 digits.
func stamp(t time.Time) string {
	n := t.UnixNano()
	if n < 0 {
		n = 0
	}
	return fmt.Sprintf("%020d", n)
}

func unstamp(s string) (time.Time, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, err
	}
	return time.Unix(0, n).UTC(), nil
}

func ms(d time.Duration) int64 { return max(d.Milliseconds(), 1) }

// thresholds returns the stamps a session's l and c must reach to be live
// at now.
func (r *RedisStore) thresholds(now time.Time) (minLast, minCreated string) {
	return stamp(now.Add(-r.timeouts.Idle)), stamp(now.Add(-r.timeouts.Absolute))
}

func (r *RedisStore) sessionKey(id string) string { return r.prefix + "s:" + id }

// meta is the part of a record that is neither encrypted nor an index
// field.
type meta struct {
	TokenExpiry  time.Time `json:"te,omitzero"`
	TokenIssued  time.Time `json:"ti,omitzero"`
	SessionState string    `json:"ss,omitempty"`
	Upstreams    []string  `json:"up,omitempty"`
	Browser      string    `json:"br,omitempty"`
	Address      string    `json:"ad,omitempty"`
	TokenType    string    `json:"tt,omitempty"`
}

// secrets is the part of a record sealed with the token cipher.
type secrets struct {
	IDToken      string `json:"i,omitempty"`
	AccessToken  string `json:"a,omitempty"`
	RefreshToken string `json:"r,omitempty"`
	Claims       []byte `json:"c,omitempty"` // byte-exact, as base64
	DPoPKey      []byte `json:"k,omitempty"`
}

// secretsV1 starts the binary form of secrets: four length-prefixed
// fields, and a fifth (the DPoP key) when there is one. It replaced JSON, whose decoding of the long token strings was a
// tenth of the gateway's CPU on every proxied request; records written as
// JSON (starting with '{') are still read.
const secretsV1 = 0x01

func (sec secrets) marshal() []byte {
	fields := [][]byte{[]byte(sec.IDToken), []byte(sec.AccessToken), []byte(sec.RefreshToken), sec.Claims}
	if len(sec.DPoPKey) > 0 {
		fields = append(fields, sec.DPoPKey)
	}
	n := 1
	for _, f := range fields {
		n += binary.MaxVarintLen32 + len(f)
	}
	b := make([]byte, 1, n)
	b[0] = secretsV1
	for _, f := range fields {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	return b
}

func unmarshalSecrets(p []byte) (secrets, error) {
	var sec secrets
	if len(p) > 0 && p[0] == '{' {
		err := json.Unmarshal(p, &sec)
		return sec, err
	}
	if len(p) == 0 || p[0] != secretsV1 {
		return sec, errors.New("unknown sealed record format")
	}
	p = p[1:]
	var fields [4][]byte
	for i := range fields {
		n, k := binary.Uvarint(p)
		if k <= 0 || n > uint64(len(p)-k) {
			return sec, errors.New("truncated sealed record")
		}
		fields[i], p = p[k:k+int(n)], p[k+int(n):]
	}
	sec.IDToken, sec.AccessToken, sec.RefreshToken = string(fields[0]), string(fields[1]), string(fields[2])
	if len(fields[3]) > 0 {
		sec.Claims = bytes.Clone(fields[3])
	}
	if len(p) > 0 { // the optional fifth field: the DPoP key
		n, k := binary.Uvarint(p)
		if k <= 0 || n != uint64(len(p)-k) {
			return sec, errors.New("truncated sealed record")
		}
		sec.DPoPKey = bytes.Clone(p[k:])
	}
	return sec, nil
}

// encode returns the m and t fields of s.
func (r *RedisStore) encode(s *Session) (m string, t []byte, err error) {
	mb, err := json.Marshal(meta{TokenExpiry: s.TokenExpiry, TokenIssued: s.TokenIssued, SessionState: s.SessionState, Upstreams: s.Upstreams,
		Browser: s.Browser, Address: s.Address, TokenType: s.TokenType})
	if err != nil {
		return "", nil, err
	}
	sb := secrets{IDToken: s.IDToken, AccessToken: s.AccessToken, RefreshToken: s.RefreshToken, Claims: s.Claims, DPoPKey: s.DPoPKey}.marshal()
	return string(mb), r.crypt.seal(s.ID, sb), nil
}

// recordFields are the fields of a session hash, in the order Get reads
// them.
var recordFields = []string{"id", "app", "iss", "sub", "sid", "c", "l", "m", "t"}

// decode builds a session from a record's fields.
func (r *RedisStore) decode(f map[string]string) (*Session, error) {
	s := &Session{ID: f["id"], App: f["app"], Issuer: f["iss"], Subject: f["sub"], SID: f["sid"]}
	var err error
	if s.CreatedAt, err = unstamp(f["c"]); err != nil {
		return nil, fmt.Errorf("decode session: created: %w", err)
	}
	if s.LastSeen, err = unstamp(f["l"]); err != nil {
		return nil, fmt.Errorf("decode session: last seen: %w", err)
	}
	var m meta
	if err := json.Unmarshal([]byte(f["m"]), &m); err != nil {
		return nil, fmt.Errorf("decode session: %w", err)
	}
	s.TokenExpiry, s.TokenIssued, s.SessionState, s.Upstreams = m.TokenExpiry, m.TokenIssued, m.SessionState, m.Upstreams
	s.Browser, s.Address, s.TokenType = m.Browser, m.Address, m.TokenType
	plain, err := r.crypt.open(s.ID, []byte(f["t"]))
	if err != nil {
		return nil, fmt.Errorf("decode session: %w", err)
	}
	sec, err := unmarshalSecrets(plain)
	if err != nil {
		return nil, fmt.Errorf("decode session: %w", err)
	}
	s.IDToken, s.AccessToken, s.RefreshToken, s.DPoPKey = sec.IDToken, sec.AccessToken, sec.RefreshToken, sec.DPoPKey
	if sec.Claims != nil {
		s.Claims = json.RawMessage(sec.Claims)
	}
	return s, nil
}

// decodeHash decodes a script's HGETALL reply.
func (r *RedisStore) decodeHash(v any) (*Session, error) {
	list, ok := v.([]any)
	if !ok || len(list)%2 != 0 {
		return nil, fmt.Errorf("decode session: unexpected reply %T", v)
	}
	f := make(map[string]string, len(list)/2)
	for i := 0; i < len(list); i += 2 {
		k, _ := list[i].(string)
		val, _ := list[i+1].(string)
		f[k] = val
	}
	return r.decode(f)
}

func (r *RedisStore) live(s *Session, now time.Time) bool {
	return !now.After(s.Expiry(r.timeouts.Idle, r.timeouts.Absolute))
}

// Create implements Store.
func (r *RedisStore) Create(ctx context.Context, s *Session) error {
	if s.ID == "" || s.App == "" || s.Issuer == "" || s.Subject == "" {
		return errors.New("create session: id, app, issuer and subject are required")
	}
	c := s.Clone()
	now := r.now()
	if c.CreatedAt.IsZero() {
		c.CreatedAt = now
	}
	if c.LastSeen.IsZero() {
		c.LastSeen = now
	}
	if !r.live(c, now) {
		return errors.New("create session: already expired")
	}
	m, t, err := r.encode(c)
	if err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	exp := c.Expiry(r.timeouts.Idle, r.timeouts.Absolute)
	res, err := scriptCreate.Run(ctx, r.rdb, r.createKeys(c),
		c.ID, c.App, c.Issuer, c.Subject, c.SID,
		stamp(c.CreatedAt), stamp(c.LastSeen), m, t,
		ms(exp.Sub(now)+gcSlack),
		stamp(now.Add(-r.timeouts.Absolute)),
		c.CreatedAt.UnixMilli(),
		now.Add(-r.timeouts.Absolute).UnixMilli(),
		ms(r.timeouts.Absolute+gcSlack),
	).Text()
	switch {
	case err != nil:
		return fmt.Errorf("create session: %w", err)
	case res == "taken":
		return errors.New("create session: id already in use")
	case res == "revoked":
		return ErrRevoked
	}
	return nil
}

// Touch implements Store.
func (r *RedisStore) Touch(ctx context.Context, id string, now time.Time) error {
	cur := r.now()
	minLast, minCreated := r.thresholds(cur)
	ttl := max(now.Sub(cur), 0) + r.timeouts.Idle + gcSlack
	n, err := scriptTouch.Run(ctx, r.rdb, []string{r.sessionKey(id)}, stamp(now), minLast, minCreated, ms(ttl)).Int()
	// The cached copy's LastSeen is old: read it again. The other
	// replicas' copies may keep theirs; an older LastSeen only makes
	// them touch, or read Redis, sooner.
	r.evict(id)
	if err != nil {
		return fmt.Errorf("touch session: %w", err)
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// Update implements Store.
func (r *RedisStore) Update(ctx context.Context, s *Session) error {
	cur := r.now()
	minLast, minCreated := r.thresholds(cur)
	m, t, err := r.encode(s)
	if err != nil {
		return fmt.Errorf("update session: %w", err)
	}
	ttl := max(s.LastSeen.Sub(cur), 0) + r.timeouts.Idle + gcSlack
	msg, w := r.expect()
	n, err := scriptUpdate.Run(ctx, r.rdb, []string{r.sessionKey(s.ID)}, minLast, minCreated, stamp(s.LastSeen), m, t, ms(ttl),
		r.invChannel, msg+" "+s.ID).Int()
	r.evict(s.ID)
	r.await(msg, w, err == nil && n == 1)
	if err != nil {
		return fmt.Errorf("update session: %w", err)
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// Ping implements Store. On a Cluster a PING goes to any node, so it
// asks the master of the store's slot instead (a read of one key there):
// that node being down is the store being down.
func (r *RedisStore) Ping(ctx context.Context) error {
	var err error
	if _, ok := r.rdb.(*redis.ClusterClient); ok {
		err = r.rdb.Exists(asPing(ctx), r.prefix+"ping").Err()
	} else {
		err = r.rdb.Ping(ctx).Err()
	}
	if err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	return nil
}

// Close stops the listener of the channels and the heartbeats. It does
// not close the client, which the caller owns. Close is idempotent.
func (r *RedisStore) Close() error {
	r.closeOnce.Do(r.cancel)
	<-r.done
	return nil
}

// String describes the store for logs.
func (r *RedisStore) String() string {
	return fmt.Sprintf("redis session store (idle %s, absolute %s)", r.timeouts.Idle, r.timeouts.Absolute)
}
