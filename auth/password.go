package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/argon2"
)

// PasswordParams are argon2id's cost parameters. They are stored in every hash (PHC
// string format), so raising them later only affects new hashes; NeedsRehash tells a
// successful login to upgrade the stored hash.
type PasswordParams struct {
	Memory      uint32 // KiB
	Iterations  uint32
	Parallelism uint8
	SaltLength  uint32 // bytes
	KeyLength   uint32 // bytes
}

// DefaultPasswordParams: 64 MiB, 2 passes, 2 lanes, 16-byte salt, 32-byte hash. Above
// OWASP's argon2id minimum (19 MiB, t=2, p=1) and close to RFC 9106's second
// recommendation (64 MiB, t=3, p=4), tuned so that one hash costs ~45-60 ms on a 2-core
// server: logins are rare next to catalog traffic, but they must not starve it.
func DefaultPasswordParams() PasswordParams {
	return PasswordParams{Memory: 64 * 1024, Iterations: 2, Parallelism: 2, SaltLength: 16, KeyLength: 32}
}

// TestPasswordParams are cheap (64 KiB, one pass): for tests only, never in production.
func TestPasswordParams() PasswordParams {
	return PasswordParams{Memory: 64, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}
}

// Validate rejects parameters argon2 cannot use or that make hashes trivially weak.
func (p PasswordParams) Validate() error {
	switch {
	case p.Iterations < 1:
		return errors.New("argon2: iterations must be >= 1")
	case p.Parallelism < 1:
		return errors.New("argon2: parallelism must be >= 1")
	case p.Memory < 8*uint32(p.Parallelism):
		return errors.New("argon2: memory must be >= 8 KiB per lane")
	case p.SaltLength < 16 || p.SaltLength > 64:
		return errors.New("argon2: salt length must be 16..64 bytes")
	case p.KeyLength < 16 || p.KeyLength > 64:
		return errors.New("argon2: key length must be 16..64 bytes")
	}
	return nil
}

// ErrMalformedHash means a stored password hash is not an argon2id PHC string this
// package can verify (a corrupt row, or a hash of another algorithm).
var ErrMalformedHash = errors.New("auth: malformed password hash")

// maxHashMemory bounds the memory a stored hash may ask for (4 GiB), so that a corrupt
// or planted hash cannot make a login allocate without limit.
const maxHashMemory = 4 * 1024 * 1024

// HashPassword hashes password with argon2id and a fresh random salt, returning a PHC
// string: $argon2id$v=19$m=65536,t=2,p=2$<salt>$<hash> (unpadded standard base64).
func HashPassword(password string, p PasswordParams) (string, error) {
	if err := p.Validate(); err != nil {
		return "", err
	}
	salt := make([]byte, p.SaltLength)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, p.Iterations, p.Memory, p.Parallelism, p.KeyLength)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Iterations, p.Parallelism, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// VerifyPassword reports whether password matches the PHC-encoded hash, comparing in
// constant time. A malformed hash is an error, never a match.
func VerifyPassword(password, encoded string) (bool, error) {
	p, salt, key, err := decodeHash(encoded)
	if err != nil {
		return false, err
	}
	got := argon2.IDKey([]byte(password), salt, p.Iterations, p.Memory, p.Parallelism, uint32(len(key)))
	return subtle.ConstantTimeCompare(got, key) == 1, nil
}

// NeedsRehash reports whether encoded was made with parameters weaker than p in some
// respect (or is not an argon2id hash at all), so that a login that just verified the
// password should store a fresh hash. Parameters lowered in configuration never
// downgrade the hashes already stored.
func NeedsRehash(encoded string, p PasswordParams) bool {
	got, salt, key, err := decodeHash(encoded)
	if err != nil {
		return true
	}
	return got.Memory < p.Memory || got.Iterations < p.Iterations || got.Parallelism < p.Parallelism ||
		uint32(len(salt)) < p.SaltLength || uint32(len(key)) < p.KeyLength
}

func decodeHash(encoded string) (p PasswordParams, salt, key []byte, err error) {
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, hash
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return p, nil, nil, ErrMalformedHash
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return p, nil, nil, fmt.Errorf("%w: unsupported version %q", ErrMalformedHash, parts[2])
	}
	var m, t, par uint64
	for i, kv := range strings.Split(parts[3], ",") {
		name, val, ok := strings.Cut(kv, "=")
		n, perr := strconv.ParseUint(val, 10, 32)
		if !ok || perr != nil || i > 2 || name != [...]string{"m", "t", "p"}[i] {
			return p, nil, nil, ErrMalformedHash
		}
		switch name {
		case "m":
			m = n
		case "t":
			t = n
		case "p":
			par = n
		}
	}
	if m == 0 || m > maxHashMemory || t == 0 || t > 64 || par == 0 || par > 255 || m < 8*par {
		return p, nil, nil, ErrMalformedHash
	}
	b64 := base64.RawStdEncoding.Strict()
	if salt, err = b64.DecodeString(parts[4]); err != nil || len(salt) < 8 {
		return p, nil, nil, ErrMalformedHash
	}
	if key, err = b64.DecodeString(parts[5]); err != nil || len(key) < 16 || len(key) > 64 {
		return p, nil, nil, ErrMalformedHash
	}
	p = PasswordParams{Memory: uint32(m), Iterations: uint32(t), Parallelism: uint8(par),
		SaltLength: uint32(len(salt)), KeyLength: uint32(len(key))}
	return p, salt, key, nil
}

// Hasher hashes and verifies passwords with fixed parameters and bounds how many hashes
// run at once and how many wait: each argon2id call holds Memory KiB and keeps its lanes
// busy on the CPU, so unbounded concurrent logins would exhaust memory and starve every
// other request (catalog browsing above all). A call beyond the bound waits in a short
// queue; when the queue is full, or the wait is over, it fails fast with ErrHasherBusy
// rather than piling up. It is safe for concurrent use.
type Hasher struct {
	params PasswordParams
	sem    chan struct{}
	dummy  string
	queue  int64
	wait   time.Duration

	waiting  atomic.Int64
	inFlight atomic.Int64
	peak     atomic.Int64
	busy     atomic.Int64
}

// ErrHasherBusy means every hashing slot is taken and the queue is full (or the wait
// timed out): the caller should answer "retry shortly" rather than hash.
var ErrHasherBusy = errors.New("auth: password hashing is saturated")

// HashLimits bound a Hasher's concurrency.
type HashLimits struct {
	// Concurrent hashes at once; 0 means DefaultHashConcurrency().
	Concurrent int
	// Queue is how many calls may wait for a slot; 0 means 2 x Concurrent, a negative
	// value none (fail at once when every slot is taken).
	Queue int
	// Wait is the longest a queued call waits; 0 means 2 s.
	Wait time.Duration
}

// DefaultHashConcurrency is GOMAXPROCS/2 (at least 1): every hash runs Parallelism lanes
// (2 by default), so half the cores hashing already keeps them all busy, and the other
// half stays free for the catalog.
func DefaultHashConcurrency() int { return max(runtime.GOMAXPROCS(0)/2, 1) }

// NewHasher returns a Hasher running at most maxConcurrent hashes at once (0 means
// DefaultHashConcurrency) with the default queue.
func NewHasher(p PasswordParams, maxConcurrent int) (*Hasher, error) {
	return NewHasherWith(p, HashLimits{Concurrent: maxConcurrent})
}

// NewHasherWith returns a Hasher bounded by l.
func NewHasherWith(p PasswordParams, l HashLimits) (*Hasher, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if l.Concurrent <= 0 {
		l.Concurrent = DefaultHashConcurrency()
	}
	switch {
	case l.Queue == 0:
		l.Queue = 2 * l.Concurrent
	case l.Queue < 0:
		l.Queue = 0
	}
	if l.Wait <= 0 {
		l.Wait = 2 * time.Second
	}
	// The dummy hash gives DummyVerify the exact cost of a real verification.
	dummy, err := HashPassword("dummy password for timing equalisation", p)
	if err != nil {
		return nil, err
	}
	return &Hasher{params: p, sem: make(chan struct{}, l.Concurrent), dummy: dummy,
		queue: int64(l.Queue), wait: l.Wait}, nil
}

// HashStats is what a Hasher has done, for metrics and tests.
type HashStats struct {
	InFlight, Waiting int64 // now
	PeakInFlight      int64 // most hashes ever running at once
	Busy              int64 // calls refused with ErrHasherBusy
}

// Stats returns the Hasher's counters.
func (h *Hasher) Stats() HashStats {
	return HashStats{InFlight: h.inFlight.Load(), Waiting: h.waiting.Load(), PeakInFlight: h.peak.Load(), Busy: h.busy.Load()}
}

// Params returns the parameters new hashes use.
func (h *Hasher) Params() PasswordParams { return h.params }

func (h *Hasher) acquire(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case h.sem <- struct{}{}:
		h.enter()
		return nil
	default:
	}
	if h.waiting.Add(1) > h.queue {
		h.waiting.Add(-1)
		h.busy.Add(1)
		return ErrHasherBusy
	}
	defer h.waiting.Add(-1)
	t := time.NewTimer(h.wait)
	defer t.Stop()
	select {
	case h.sem <- struct{}{}:
		h.enter()
		return nil
	case <-t.C:
		h.busy.Add(1)
		return ErrHasherBusy
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *Hasher) enter() {
	n := h.inFlight.Add(1)
	for p := h.peak.Load(); n > p && !h.peak.CompareAndSwap(p, n); p = h.peak.Load() {
	}
}

func (h *Hasher) release() {
	h.inFlight.Add(-1)
	<-h.sem
}

// Hash hashes password with the Hasher's parameters.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	defer h.release()
	return HashPassword(password, h.params)
}

// Verify reports whether password matches encoded and, when it does, whether the hash
// should be replaced because it was made with other parameters.
func (h *Hasher) Verify(ctx context.Context, password, encoded string) (ok, rehash bool, err error) {
	if err := h.acquire(ctx); err != nil {
		return false, false, err
	}
	defer h.release()
	ok, err = VerifyPassword(password, encoded)
	if err != nil || !ok {
		return false, false, err
	}
	return true, NeedsRehash(encoded, h.params), nil
}

// DummyVerify spends the time of a real Verify and always fails. Call it when no account
// matches the login's email, so that "no such account" and "wrong password" cost the
// same and response times do not reveal which emails are registered. Its error is the
// one Verify would have returned (no hashing slot before the deadline, say): return it
// as a real login would, or the failure mode itself reveals the difference.
func (h *Hasher) DummyVerify(ctx context.Context, password string) error {
	_, _, err := h.Verify(ctx, password, h.dummy)
	return err
}
