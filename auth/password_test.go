package auth_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopfront/bookstore"
	"github.com/shopfront/bookstore/auth"
)

func TestHashAndVerify(t *testing.T) {
	p := auth.TestPasswordParams()
	h, err := auth.HashPassword("correct horse battery staple", p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("hash %q is not a PHC argon2id string", h)
	}
	if strings.Count(h, "$") != 5 {
		t.Fatalf("hash %q has the wrong number of fields", h)
	}
	if ok, err := auth.VerifyPassword("correct horse battery staple", h); err != nil || !ok {
		t.Fatalf("right password: %v, %v", ok, err)
	}
	for _, wrong := range []string{"", "correct horse battery stapl", "Correct horse battery staple", "correct horse battery staple "} {
		if ok, err := auth.VerifyPassword(wrong, h); err != nil || ok {
			t.Errorf("wrong password %q: %v, %v", wrong, ok, err)
		}
	}
	h2, _ := auth.HashPassword("correct horse battery staple", p)
	if h2 == h {
		t.Fatal("two hashes of one password are equal: the salt is not random")
	}
}

// TestVerifyReferenceVectors verifies hashes made by the Argon2 reference implementation
// (phc-winner-argon2, src/test.c): our PHC decoding and argon2id agree with it, so hashes
// can move between implementations.
func TestVerifyReferenceVectors(t *testing.T) {
	for _, h := range []string{
		"$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
		"$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
	} {
		if ok, err := auth.VerifyPassword("password", h); err != nil || !ok {
			t.Errorf("reference %s: %v, %v", h, ok, err)
		}
		if ok, err := auth.VerifyPassword("passwore", h); err != nil || ok {
			t.Errorf("reference %s with a wrong password: %v, %v", h, ok, err)
		}
	}
	// Hashes with parameters other than the defaults verify with their own parameters.
	p := auth.PasswordParams{Memory: 128, Iterations: 3, Parallelism: 2, SaltLength: 24, KeyLength: 48}
	h, err := auth.HashPassword("pässwörd", p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(h, "$m=128,t=3,p=2$") {
		t.Fatalf("params not encoded: %s", h)
	}
	if ok, err := auth.VerifyPassword("pässwörd", h); err != nil || !ok {
		t.Fatalf("verify with stored params: %v, %v", ok, err)
	}
}

func TestNeedsRehash(t *testing.T) {
	cheap := auth.TestPasswordParams()
	h, _ := auth.HashPassword("a long enough passphrase", cheap)
	if auth.NeedsRehash(h, cheap) {
		t.Error("hash with current params needs rehash")
	}
	for name, p := range map[string]auth.PasswordParams{
		"memory":      {Memory: 128, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32},
		"iterations":  {Memory: 64, Iterations: 2, Parallelism: 1, SaltLength: 16, KeyLength: 32},
		"parallelism": {Memory: 64, Iterations: 1, Parallelism: 2, SaltLength: 16, KeyLength: 32},
		"key length":  {Memory: 64, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 64},
		"salt length": {Memory: 64, Iterations: 1, Parallelism: 1, SaltLength: 32, KeyLength: 32},
	} {
		if !auth.NeedsRehash(h, p) {
			t.Errorf("%s changed but NeedsRehash is false", name)
		}
	}
	// Lower parameters (a misconfiguration, or a test setting that leaked) never weaken
	// a stored hash.
	strong, _ := auth.HashPassword("a long enough passphrase", auth.PasswordParams{Memory: 256, Iterations: 3, Parallelism: 2, SaltLength: 32, KeyLength: 64})
	if auth.NeedsRehash(strong, cheap) {
		t.Error("a hash stronger than the configuration would be replaced by a weaker one")
	}
	if !auth.NeedsRehash("$2a$10$abcdefghijklmnopqrstuv", cheap) {
		t.Error("a bcrypt hash does not need rehash")
	}
}

func TestMalformedHashes(t *testing.T) {
	h, _ := auth.HashPassword("a long enough passphrase", auth.TestPasswordParams())
	parts := strings.Split(h, "$")
	join := func(mod func([]string)) string {
		p := append([]string(nil), parts...)
		mod(p)
		return strings.Join(p, "$")
	}
	for name, bad := range map[string]string{
		"empty":         "",
		"bcrypt":        "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
		"argon2i":       join(func(p []string) { p[1] = "argon2i" }),
		"version 16":    join(func(p []string) { p[2] = "v=16" }),
		"params order":  join(func(p []string) { p[3] = "t=1,m=64,p=1" }),
		"zero memory":   join(func(p []string) { p[3] = "m=0,t=1,p=1" }),
		"huge memory":   join(func(p []string) { p[3] = "m=999999999,t=1,p=1" }),
		"zero time":     join(func(p []string) { p[3] = "m=64,t=0,p=1" }),
		"extra param":   join(func(p []string) { p[3] = "m=64,t=1,p=1,x=2" }),
		"bad salt":      join(func(p []string) { p[4] = "!!" }),
		"short key":     join(func(p []string) { p[5] = "AAAA" }),
		"padded base64": join(func(p []string) { p[5] += "=" }),
		"extra field":   h + "$x",
	} {
		ok, err := auth.VerifyPassword("a long enough passphrase", bad)
		if ok || !errors.Is(err, auth.ErrMalformedHash) {
			t.Errorf("%s: VerifyPassword = %v, %v; want ErrMalformedHash", name, ok, err)
		}
	}
}

func TestParamsValidate(t *testing.T) {
	if err := auth.DefaultPasswordParams().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []auth.PasswordParams{
		{Memory: 64, Iterations: 0, Parallelism: 1, SaltLength: 16, KeyLength: 32},
		{Memory: 64, Iterations: 1, Parallelism: 0, SaltLength: 16, KeyLength: 32},
		{Memory: 4, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32},
		{Memory: 64, Iterations: 1, Parallelism: 1, SaltLength: 8, KeyLength: 32},
		{Memory: 64, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 8},
	} {
		if p.Validate() == nil {
			t.Errorf("%+v validated", p)
		}
		if _, err := auth.HashPassword("x", p); err == nil {
			t.Errorf("HashPassword with %+v succeeded", p)
		}
	}
}

func TestHasher(t *testing.T) {
	ctx := context.Background()
	h, err := auth.NewHasher(auth.TestPasswordParams(), 2)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := h.Hash(ctx, "a long enough passphrase")
	if err != nil {
		t.Fatal(err)
	}
	if ok, rehash, err := h.Verify(ctx, "a long enough passphrase", enc); !ok || rehash || err != nil {
		t.Fatalf("Verify = %v, %v, %v", ok, rehash, err)
	}
	if ok, _, err := h.Verify(ctx, "wrong", enc); ok || err != nil {
		t.Fatalf("wrong password: %v, %v", ok, err)
	}
	// A hash made with older (here: different) params verifies and asks for a rehash.
	old, _ := auth.HashPassword("a long enough passphrase", auth.PasswordParams{Memory: 32, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32})
	if ok, rehash, err := h.Verify(ctx, "a long enough passphrase", old); !ok || !rehash || err != nil {
		t.Fatalf("old-params hash: %v, %v, %v", ok, rehash, err)
	}
	if err := h.DummyVerify(ctx, "anything"); err != nil {
		t.Fatalf("DummyVerify: %v", err)
	}
}

// TestDummyVerifyFailsLikeVerify: when no hashing slot frees up before the deadline,
// DummyVerify returns the same error as Verify, so a login for an unknown email fails the
// way one for a registered email does.
func TestDummyVerifyFailsLikeVerify(t *testing.T) {
	slow := auth.PasswordParams{Memory: 64 * 1024, Iterations: 8, Parallelism: 1, SaltLength: 16, KeyLength: 32}
	h, err := auth.NewHasher(slow, 1)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := h.Hash(context.Background(), "a long enough passphrase")
	if err != nil {
		t.Fatal(err)
	}
	busy := make(chan struct{})
	go func() { // holds the only slot for a few hundred milliseconds
		defer close(busy)
		_, _, _ = h.Verify(context.Background(), "a long enough passphrase", stored)
	}()
	time.Sleep(20 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel()
	_, _, verr := h.Verify(ctx, "a guess", stored)
	derr := h.DummyVerify(ctx, "a guess")
	<-busy
	if verr == nil || derr == nil || errors.Is(derr, context.DeadlineExceeded) != errors.Is(verr, context.DeadlineExceeded) {
		t.Fatalf("Verify: %v; DummyVerify: %v; want the same deadline error from both", verr, derr)
	}
}

// TestHasherBoundsConcurrency checks that no more than maxConcurrent hashes run at once
// and that waiting callers give up with their context.
func TestHasherBoundsConcurrency(t *testing.T) {
	p := auth.PasswordParams{Memory: 4 * 1024, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}
	h, err := auth.NewHasherWith(p, auth.HashLimits{Concurrent: 1, Queue: 8})
	if err != nil {
		t.Fatal(err)
	}
	enc, _ := auth.HashPassword("x", p)
	// Saturate the single slot, then a caller with an expired context must not wait.
	var wg sync.WaitGroup
	var done atomic.Int32
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := h.Verify(context.Background(), "x", enc); err == nil {
				done.Add(1)
			}
		}()
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// With the slot possibly free the select may pick either branch; loop until the
	// cancelled context is observed at least once.
	sawCancel := false
	for range 100 {
		if _, _, err := h.Verify(ctx, "x", enc); errors.Is(err, context.Canceled) {
			sawCancel = true
			break
		}
	}
	wg.Wait()
	if !sawCancel {
		t.Error("a cancelled context never stopped Verify from waiting")
	}
	if done.Load() != 4 {
		t.Errorf("%d of 4 concurrent verifications succeeded", done.Load())
	}
	if st := h.Stats(); st.PeakInFlight != 1 {
		t.Errorf("stats %+v: more than one hash at once", st)
	}
}

// TestHasherQueueFailsFast: beyond the slots and the short queue, callers are refused at
// once with ErrHasherBusy instead of piling up (holding memory and goroutines).
func TestHasherQueueFailsFast(t *testing.T) {
	p := auth.PasswordParams{Memory: 8 * 1024, Iterations: 2, Parallelism: 1, SaltLength: 16, KeyLength: 32}
	h, err := auth.NewHasherWith(p, auth.HashLimits{Concurrent: 1, Queue: 1, Wait: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if got := auth.DefaultHashConcurrency(); got != max(runtime.GOMAXPROCS(0)/2, 1) {
		t.Fatalf("default concurrency %d", got)
	}
	enc, _ := auth.HashPassword("x", p)
	var wg sync.WaitGroup
	var ok, busy atomic.Int32
	for range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, err := h.Verify(context.Background(), "x", enc)
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, auth.ErrHasherBusy):
				busy.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	st := h.Stats()
	if busy.Load() == 0 || ok.Load() < 2 || st.PeakInFlight != 1 || int64(busy.Load()) != st.Busy {
		t.Fatalf("%d ok, %d busy, stats %+v", ok.Load(), busy.Load(), st)
	}
}

// TestDummyVerifyCostsLikeVerify: "no such user" must not answer faster than "wrong
// password", or response times reveal which emails have accounts.
func TestDummyVerifyCostsLikeVerify(t *testing.T) {
	p := auth.PasswordParams{Memory: 8 * 1024, Iterations: 2, Parallelism: 1, SaltLength: 16, KeyLength: 32}
	h, err := auth.NewHasher(p, 1)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	enc, _ := h.Hash(ctx, "the real password here")
	// Interleaved, best of 15 each: a burst of load from other tests on a shared
	// 2-core machine slows both sides alike instead of only one of them.
	timeIt := func(f func()) time.Duration {
		start := time.Now()
		f()
		return time.Since(start)
	}
	real, dummy := time.Hour, time.Hour
	for range 15 {
		real = min(real, timeIt(func() { _, _, _ = h.Verify(ctx, "a wrong password guess", enc) }))
		dummy = min(dummy, timeIt(func() { h.DummyVerify(ctx, "a wrong password guess") }))
	}
	ratio := float64(dummy) / float64(real)
	if ratio < 0.5 || ratio > 2 {
		t.Fatalf("DummyVerify %v vs Verify %v (ratio %.2f): timing reveals unknown accounts", dummy, real, ratio)
	}
}

func TestPasswordPolicy(t *testing.T) {
	pol := auth.DefaultPasswordPolicy()
	email := "ann.smith@example.com"
	cases := []struct {
		name     string
		password string
		ok       bool
	}{
		{"passphrase", "violet staircase under rain", true},
		{"15 chars", "kq8#Lm2!zR4@wX9", true},
		{"unicode counts runes", "ÄÖÜäöüßÄÖÜäöüßé", true}, // 15 runes, 30 bytes
		{"spaces allowed", "a b c d e f g h i j k", true},
		{"emoji", "🐉 dragons read books at night", true},
		{"no composition rules", "alllowercaseletterswithoutdigits", true},
		{"14 chars", "kq8#Lm2!zR4@wX", false},
		{"empty", "", false},
		{"129 chars", strings.Repeat("ab", 64) + "c", false},
		{"128 chars", strings.Repeat("x", 100) + "the quick brown fox jumps 28", true},
		{"common long", "123456789012345", false},
		{"common long, other case", "QwertyuiopASDFGH", false},
		{"repeated char", strings.Repeat("a", 20), false},
		{"repeated pattern", strings.Repeat("abc", 6), false},
		{"sequence", "abcdefghijklmnopq", false},
		{"descending digits", "98765432109876543", false},
		{"email", email, false},
		{"email plus digits", email + "1", false},
		{"local part plus a bit", "ann.smith2024!!", false},
		{"service name", "bookstore2025!!!", false},
		{"control char", "violet staircase\x00under rain", false},
		{"invalid utf8", "violet staircase \xff\xfe under", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := pol.Check(auth.NormalizePassword(c.password), email, "Ann Smith")
			if c.ok && err != nil {
				t.Fatalf("Check(%q) = %v, want ok", c.password, err)
			}
			if !c.ok {
				var be *bookstore.Error
				if !errors.As(err, &be) || be.Code != bookstore.CodeBadUserInput || be.Field != "password" {
					t.Fatalf("Check(%q) = %v, want BAD_USER_INPUT on password", c.password, err)
				}
				if strings.Contains(be.Message, c.password) && c.password != "" {
					t.Fatalf("error message echoes the password: %q", be.Message)
				}
			}
		})
	}
}

func TestNormalizePassword(t *testing.T) {
	// é precomposed vs e + combining acute: one password.
	if auth.NormalizePassword("caf\u00e9 au lait forever") != auth.NormalizePassword("cafe\u0301 au lait forever") {
		t.Fatal("NFC variants differ")
	}
}

func BenchmarkDefaultHash(b *testing.B) {
	p := auth.DefaultPasswordParams()
	for b.Loop() {
		if _, err := auth.HashPassword("violet staircase under rain", p); err != nil {
			b.Fatal(err)
		}
	}
}
