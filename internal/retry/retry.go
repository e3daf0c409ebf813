// Package retry is the one place the agent decides how long to wait before trying again: Policy is
// exponential backoff with jitter that honours what a server asks for (Retry-After, or a vendor's
// equivalent), used by every client and by the work queue; ParseRetryAfter reads the header, Wait waits
// under a context, and Transport makes SDKs that ignore Retry-After wait it out.
package retry

import (
	"math"
	"math/rand/v2"
	"time"
)

// Policy says after what wait, and how often, a failed call is tried again. The backoff after the nth
// consecutive failure is Base·2^(n-1), capped at Max, then jittered. Vendors' differences are the
// values of these fields; each client says why where its values are special.
type Policy struct {
	Base time.Duration // the backoff after the first failure
	Max  time.Duration // where doubling stops, before jitter; 0 is no cap
	// Jitter spreads the waits of clients that failed together, so they do not retry together.
	Jitter Jitter
	// Attempts is how many tries Delay allows in all, the first included; 0 leaves stopping to the
	// caller (a work queue retries a key for as long as it is wanted).
	Attempts int
	// RetryAfter says how a wait the server asked for is honoured; the zero value ignores it.
	RetryAfter RetryAfter
	// Rand draws the jitter; nil is math/rand/v2's global source. A *rand.Rand is not safe for
	// concurrent use: set one only where one goroutine uses the policy (tests, seeded).
	Rand *rand.Rand
}

// RetryAfter says how a Policy honours a wait the server asked for.
type RetryAfter struct {
	// Max is the longest wait a server may ask for and get; 0 ignores what servers ask.
	Max time.Duration
	// GiveUp makes a longer ask end the retries instead of being cut to Max: a caller with a work
	// queue then requeues the work rather than holding a worker.
	GiveUp bool
	// AtLeastBackoff makes the ask only ever lengthen the backoff, never shorten it.
	AtLeastBackoff bool
}

// Jitter is how a backoff d is spread; the zero Jitter waits exactly d.
type Jitter struct {
	kind   jitterKind
	frac   float64
	spread time.Duration
}

type jitterKind uint8

const (
	noJitter jitterKind = iota
	fullJitter
	fractionJitter
	spreadJitter
)

// Full draws the wait uniformly from [0, d] ("full jitter"): the widest spread, so the wait never
// exceeds Max, but a wait may be close to none.
func Full() Jitter { return Jitter{kind: fullJitter} }

// Fraction adds up to f·d to d, drawn uniformly from [0, f·d]. Added after the cap, it keeps work
// that has failed for long, and so waits Max, from retrying in lockstep.
func Fraction(f float64) Jitter { return Jitter{kind: fractionJitter, frac: f} }

// UpTo adds a wait drawn uniformly from [0, s) to d, whatever d is.
func UpTo(s time.Duration) Jitter { return Jitter{kind: spreadJitter, spread: s} }

// Backoff is the wait after the nth consecutive failure (n below 1 counts as 1): Base·2^(n-1), at most
// Max, then jittered. It never overflows, however large n is.
func (p Policy) Backoff(n int) time.Duration {
	limit := p.Max
	if limit <= 0 {
		limit = math.MaxInt64
	}
	base := max(p.Base, 0)
	d := limit
	// Compare before shifting, so that many failures cannot overflow.
	if shift := max(n, 1) - 1; shift < 63 && base <= limit>>shift {
		d = base << shift
	}
	return p.jitter(d)
}

// Delay is the wait before trying again after the nth consecutive failure (n ≥ 1), given the wait the
// server asked for (asked is false when it asked for none). ok is false when the caller should stop:
// the policy's Attempts are spent, or the server asked for more than RetryAfter.Max and
// RetryAfter.GiveUp is set.
func (p Policy) Delay(n int, ask time.Duration, asked bool) (wait time.Duration, ok bool) {
	if p.Attempts > 0 && n >= p.Attempts {
		return 0, false
	}
	ra := p.RetryAfter
	if !asked || ra.Max <= 0 {
		return p.Backoff(n), true
	}
	if ask > ra.Max {
		if ra.GiveUp {
			return 0, false
		}
		ask = ra.Max
	}
	ask = max(ask, 0)
	if ra.AtLeastBackoff {
		return max(ask, p.Backoff(n)), true
	}
	return ask, true
}

func (p Policy) jitter(d time.Duration) time.Duration {
	switch j := p.Jitter; j.kind {
	case fullJitter:
		return time.Duration(p.draw(uint64(d) + 1))
	case fractionJitter:
		if !(j.frac > 0) { // NaN too
			return d
		}
		// The float product is exact to the nanosecond for any wait below 52 days, so
		// Fraction(0.2) draws from the same [0, d/5] as integer division would.
		top := time.Duration(math.MaxInt64)
		if f := float64(d) * j.frac; f < math.MaxInt64 {
			top = time.Duration(f)
		}
		return addCapped(d, time.Duration(p.draw(uint64(top)+1)))
	case spreadJitter:
		if j.spread <= 0 {
			return d
		}
		return addCapped(d, time.Duration(p.draw(uint64(j.spread))))
	}
	return d
}

// draw is uniform in [0, n), n ≥ 1.
func (p Policy) draw(n uint64) uint64 {
	if p.Rand != nil {
		return p.Rand.Uint64N(n)
	}
	return rand.Uint64N(n)
}

func addCapped(a, b time.Duration) time.Duration {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}
