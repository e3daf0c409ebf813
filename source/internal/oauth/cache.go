package oauth

import (
	"context"
	"sync"
	"time"
)

// Cache holds one access token, lets one caller fetch a new one at a time (the others wait, or give
// up with their context), and drops a token the API refused. The zero value is not usable: use NewCache.
type Cache struct {
	margin    func(life time.Duration) time.Duration
	now       func() time.Time
	fromStart bool

	fetching chan struct{} // one fetch at a time; a channel so that waiting for it honours ctx

	mu        sync.Mutex
	token     string
	refreshAt time.Time
}

// CacheOptions configure a Cache.
type CacheOptions struct {
	// Margin is how long before the end of a token's life it is replaced. Required.
	Margin func(life time.Duration) time.Duration
	// Now is the clock; time.Now if nil.
	Now func() time.Time
	// FromStart measures a token's life from before the fetch rather than from its end.
	FromStart bool
}

// NewCache returns an empty cache.
func NewCache(o CacheOptions) *Cache {
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Cache{margin: o.Margin, now: o.Now, fromStart: o.FromStart, fetching: make(chan struct{}, 1)}
}

func (c *Cache) current() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token != "" && c.now().Before(c.refreshAt) {
		return c.token
	}
	return ""
}

// Token returns the cached token, or calls fetch for a new one when there is none or it is due for
// refresh. fetch's error is returned as is; so is ctx.Err() when ctx ends while waiting for another fetch.
func (c *Cache) Token(ctx context.Context, fetch func(ctx context.Context) (token string, expiresIn time.Duration, err error)) (string, error) {
	if tok := c.current(); tok != "" {
		return tok, nil
	}
	select {
	case c.fetching <- struct{}{}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	defer func() { <-c.fetching }()
	if tok := c.current(); tok != "" { // another caller fetched it while this one waited
		return tok, nil
	}
	start := c.now()
	tok, life, err := fetch(ctx)
	if err != nil {
		return "", err
	}
	if !c.fromStart {
		start = c.now()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.token, c.refreshAt = tok, start.Add(life-c.margin(life))
	return tok, nil
}

// Forget drops token if it is still the cached one (the API refused it: revoked, or the clock lied).
func (c *Cache) Forget(token string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token == token {
		c.token = ""
	}
}
