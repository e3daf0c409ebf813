package retry

import (
	"math"
	"math/rand/v2"
	"net/http"
	"testing"
	"time"
)

// TestBackoffBounds: every jitter mode stays within its bounds around the capped exponential, for small
// and huge failure counts alike (no overflow, no negative wait).
func TestBackoffBounds(t *testing.T) {
	const s = time.Second
	tests := []struct {
		name   string
		p      Policy
		n      int
		lo, hi time.Duration // inclusive
	}{
		{"none: base at the first failure", Policy{Base: s, Max: time.Minute}, 1, s, s},
		{"none: n below 1 counts as 1", Policy{Base: s, Max: time.Minute}, -5, s, s},
		{"none: doubling", Policy{Base: s, Max: time.Minute}, 4, 8 * s, 8 * s},
		{"none: capped at Max", Policy{Base: s, Max: time.Minute}, 7, time.Minute, time.Minute},
		{"none: overflow at 64", Policy{Base: s, Max: time.Minute}, 64, time.Minute, time.Minute},
		{"none: overflow at MaxInt", Policy{Base: s, Max: time.Minute}, math.MaxInt, time.Minute, time.Minute},
		{"none: no cap grows to the largest duration", Policy{Base: s}, 1000, math.MaxInt64, math.MaxInt64},
		{"none: base above max is max", Policy{Base: time.Hour, Max: time.Minute}, 1, time.Minute, time.Minute},
		{"full: within [0, d]", Policy{Base: s, Max: time.Minute, Jitter: Full()}, 3, 0, 4 * s},
		{"full: never above Max", Policy{Base: s, Max: time.Minute, Jitter: Full()}, 100, 0, time.Minute},
		{"full: no cap, huge n", Policy{Base: s, Jitter: Full()}, 1000, 0, math.MaxInt64},
		{"fraction: within [d, 1.2d]", Policy{Base: s, Max: time.Minute, Jitter: Fraction(0.2)}, 3, 4 * s, 4*s + 800*time.Millisecond},
		{"fraction: added after the cap", Policy{Base: s, Max: time.Minute, Jitter: Fraction(0.2)}, 100, time.Minute, 72 * s},
		{"fraction: saturates instead of overflowing", Policy{Base: s, Jitter: Fraction(0.2)}, 1000, math.MaxInt64, math.MaxInt64},
		{"fraction: NaN is none", Policy{Base: s, Max: time.Minute, Jitter: Fraction(math.NaN())}, 2, 2 * s, 2 * s},
		{"up to: within [d, d+s)", Policy{Base: s, Max: 32 * s, Jitter: UpTo(s)}, 2, 2 * s, 3*s - 1},
		{"up to: after the cap", Policy{Base: s, Max: 32 * s, Jitter: UpTo(s)}, 40, 32 * s, 33*s - 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.p.Rand = rand.New(rand.NewPCG(1, 2))
			for range 200 {
				if d := tt.p.Backoff(tt.n); d < tt.lo || d > tt.hi {
					t.Fatalf("Backoff(%d) = %v, want within [%v, %v]", tt.n, d, tt.lo, tt.hi)
				}
			}
		})
	}
}

// TestJitterSpreads: the jittered modes really spread (a constant would pass the bounds above).
func TestJitterSpreads(t *testing.T) {
	for _, j := range []Jitter{Full(), Fraction(0.2), UpTo(time.Second)} {
		p := Policy{Base: time.Second, Max: time.Minute, Jitter: j, Rand: rand.New(rand.NewPCG(3, 4))}
		seen := map[time.Duration]bool{}
		for range 50 {
			seen[p.Backoff(3)] = true
		}
		if len(seen) < 40 {
			t.Errorf("%+v: %d distinct waits of 50", j, len(seen))
		}
	}
}

// TestWorkQueuePolicies: the Policy values the work queue (sync/workqueue) and the applier (sync/apply)
// use compute exactly what their own formulas computed before they switched to Policy, draw for draw.
// The oracles are those formulas.
func TestWorkQueuePolicies(t *testing.T) {
	queue := func(base, maxDelay time.Duration, r *rand.Rand, n int) time.Duration {
		d := maxDelay
		if shift := n - 1; shift < 63 && base <= maxDelay>>shift {
			d = base << shift
		}
		return d + time.Duration(r.Int64N(int64(d/5+1)))
	}
	applier := func(r *rand.Rand, n int) time.Duration {
		d := 30 * time.Second
		for i := 1; i < n && d < time.Hour; i++ {
			d *= 2
		}
		d = min(d, time.Hour)
		return d + time.Duration(r.Int64N(int64(d)/5+1))
	}
	tests := []struct {
		name   string
		p      Policy
		oracle func(r *rand.Rand, n int) time.Duration
	}{
		{"queue defaults", Policy{Base: time.Second, Max: 5 * time.Minute, Jitter: Fraction(0.2)},
			func(r *rand.Rand, n int) time.Duration { return queue(time.Second, 5*time.Minute, r, n) }},
		{"queue, odd delays", Policy{Base: 7*time.Millisecond + 3, Max: 13*time.Second + 1, Jitter: Fraction(0.2)},
			func(r *rand.Rand, n int) time.Duration { return queue(7*time.Millisecond+3, 13*time.Second+1, r, n) }},
		{"applier", Policy{Base: 30 * time.Second, Max: time.Hour, Jitter: Fraction(0.2)}, applier},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.p.Rand = rand.New(rand.NewPCG(5, 6))
			oracleRand := rand.New(rand.NewPCG(5, 6))
			for n := 1; n <= 100; n++ {
				if got, want := tt.p.Backoff(n), tt.oracle(oracleRand, n); got != want {
					t.Fatalf("Backoff(%d) = %v, want %v", n, got, want)
				}
			}
		})
	}
}

func TestDelay(t *testing.T) {
	const s = time.Second
	exact := Policy{Base: s, Max: 10 * s, Attempts: 4}
	tests := []struct {
		name   string
		p      Policy
		n      int
		ask    time.Duration
		asked  bool
		want   time.Duration
		wantOK bool
	}{
		{"no ask: the backoff", exact, 2, 0, false, 2 * s, true},
		{"attempts spent", exact, 4, 0, false, 0, false},
		{"no attempt limit", Policy{Base: s, Max: 10 * s}, 1000, 0, false, 10 * s, true},
		{"ask ignored without RetryAfter.Max", exact, 1, 5 * s, true, s, true},
		{"ask replaces the backoff", withRA(exact, RetryAfter{Max: time.Minute}), 3, s, true, s, true},
		{"ask of zero: retry at once", withRA(exact, RetryAfter{Max: time.Minute}), 3, 0, true, 0, true},
		{"ask longer than Max is cut", withRA(exact, RetryAfter{Max: time.Minute}), 1, time.Hour, true, time.Minute, true},
		{"ask longer than Max gives up", withRA(exact, RetryAfter{Max: time.Minute, GiveUp: true}), 1, time.Hour, true, 0, false},
		{"ask of exactly Max is honoured", withRA(exact, RetryAfter{Max: time.Minute, GiveUp: true}), 1, time.Minute, true, time.Minute, true},
		{"ask longer than the backoff cap", withRA(exact, RetryAfter{Max: time.Minute}), 1, 30 * s, true, 30 * s, true},
		{"at least the backoff: short ask", withRA(exact, RetryAfter{Max: time.Minute, AtLeastBackoff: true}), 3, s, true, 4 * s, true},
		{"at least the backoff: long ask", withRA(exact, RetryAfter{Max: time.Minute, AtLeastBackoff: true}), 1, 7 * s, true, 7 * s, true},
		{"at least the backoff: ask cut to Max", withRA(exact, RetryAfter{Max: time.Minute, AtLeastBackoff: true}), 1, time.Hour, true, time.Minute, true},
		{"attempts spent despite an ask", withRA(exact, RetryAfter{Max: time.Minute}), 4, s, true, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := tt.p.Delay(tt.n, tt.ask, tt.asked)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("Delay(%d, %v, %v) = %v, %v; want %v, %v", tt.n, tt.ask, tt.asked, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

// TestDelayFromHeader: a Retry-After header read by ParseRetryAfter and fed to Delay, as the clients do.
func TestDelayFromHeader(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	p := Policy{Base: time.Second, Max: 8 * time.Second, Attempts: 5, RetryAfter: RetryAfter{Max: 30 * time.Second, GiveUp: true}}
	tests := []struct {
		header string
		want   time.Duration
		wantOK bool
	}{
		{"3", 3 * time.Second, true},
		{now.Add(20 * time.Second).Format(http.TimeFormat), 20 * time.Second, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{"garbage", 2 * time.Second, true}, // unreadable: the backoff
		{"", 2 * time.Second, true},
		{"31", 0, false}, // longer than the policy waits
		{now.Add(time.Hour).Format(http.TimeFormat), 0, false},
	}
	for _, tt := range tests {
		ask, asked := ParseRetryAfter(tt.header, now)
		if got, ok := p.Delay(2, ask, asked); got != tt.want || ok != tt.wantOK {
			t.Errorf("Retry-After %q: Delay = %v, %v; want %v, %v", tt.header, got, ok, tt.want, tt.wantOK)
		}
	}
}

func withRA(p Policy, ra RetryAfter) Policy {
	p.RetryAfter = ra
	return p
}
