package pgstate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrFenced is a write refused because its term is over: another replica took the lease (a higher
// epoch), or the lease expired, or this replica stepped down. The replica must stop its leader work.
var ErrFenced = errors.New("fenced: this replica no longer holds the leader lease")

// errStepDown ends a term whose lead function returned before the term was over.
var errStepDown = errors.New("the leader's work stopped: stepping down")

// Default lease timing, as Kubernetes' leader election has it: a leader that cannot renew for
// RenewDeadline steps down, 5 s before another replica may take the lease.
const (
	DefaultLeaseDuration = 15 * time.Second
	DefaultRenewDeadline = 10 * time.Second
	DefaultRetryPeriod   = 2 * time.Second
)

// LeaseConfig configures an Elector.
type LeaseConfig struct {
	Name   string // the lease: replicas that share one elect one leader; default "byob-agent"
	Holder string // this replica, unique among them (host name and process id, say); required
	// Duration is how long a lease lasts after its last renewal, in the database server's time.
	Duration time.Duration
	// RenewDeadline is how long the leader keeps trying to renew before it steps down, counted on
	// its own clock from the start of its last successful renewal; shorter than Duration.
	RenewDeadline time.Duration
	// RetryPeriod is how often the leader renews and the others try to take the lease.
	RetryPeriod time.Duration
	Log         *slog.Logger // nil: discarded
}

func (c *LeaseConfig) setDefaults() error {
	if c.Name == "" {
		c.Name = "byob-agent"
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Holder == "" {
		return errors.New("leader lease: holder is required")
	}
	var err error
	c.Duration, c.RenewDeadline, c.RetryPeriod, err = LeaseTimings(c.Duration, c.RenewDeadline, c.RetryPeriod)
	if err != nil {
		return fmt.Errorf("leader lease: %w", err)
	}
	return nil
}

// LeaseTimings gives zero timings their defaults and checks that they nest: each positive, the
// retry period shorter than the renew deadline, which is shorter than the lease duration.
func LeaseTimings(duration, renewDeadline, retryPeriod time.Duration) (time.Duration, time.Duration, time.Duration, error) {
	if duration == 0 {
		duration = DefaultLeaseDuration
	}
	if renewDeadline == 0 {
		renewDeadline = DefaultRenewDeadline
	}
	if retryPeriod == 0 {
		retryPeriod = DefaultRetryPeriod
	}
	switch {
	case duration < 0 || renewDeadline < 0 || retryPeriod < 0:
		return 0, 0, 0, errors.New("lease timings must be positive")
	case renewDeadline >= duration:
		return 0, 0, 0, fmt.Errorf("renewDeadline %v must be shorter than the lease duration %v", renewDeadline, duration)
	case retryPeriod >= renewDeadline:
		return 0, 0, 0, fmt.Errorf("retryPeriod %v must be shorter than renewDeadline %v", retryPeriod, renewDeadline)
	}
	return duration, renewDeadline, retryPeriod, nil
}

// Term is one replica's time as leader: the lease's epoch when it took it. Its context ends when the
// term does.
type Term struct {
	Name, Holder string
	Epoch        int64
	ctx          context.Context
	// idle bounds how long a write transaction of the term may sit idle on the server: a leader
	// paused inside one (SIGSTOP, a long GC, a frozen VM) would otherwise hold the lease row FOR SHARE
	// and keep every other replica from taking over, for as long as the pause lasts.
	idle time.Duration
}

// check, inside a write transaction, holds the lease row (FOR SHARE) and proves the term current. A
// takeover updates that row, so it waits for this transaction: a write committed under epoch e always
// precedes the start of term e+1.
func (t *Term) check(ctx context.Context, tx pgx.Tx) error {
	if t.ctx == nil {
		return fmt.Errorf("%w: term %d was not begun by an Elector", ErrFenced, t.Epoch)
	}
	if err := t.ctx.Err(); err != nil {
		return fmt.Errorf("%w: term %d has ended", ErrFenced, t.Epoch)
	}
	var epoch int64
	var live bool
	var setting string
	err := tx.QueryRow(ctx, `SELECT epoch, expires_at > clock_timestamp(), set_config('idle_in_transaction_session_timeout', $2, true)
		FROM leader_lease WHERE name = $1 FOR SHARE`, t.Name, strconv.FormatInt(t.idle.Milliseconds(), 10)).Scan(&epoch, &live, &setting)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("%w: lease %q does not exist", ErrFenced, t.Name)
	case err != nil:
		return fmt.Errorf("check leader epoch: %w", err)
	case epoch != t.Epoch:
		return fmt.Errorf("%w: epoch %d is current, this replica's term was %d", ErrFenced, epoch, t.Epoch)
	case !live:
		return fmt.Errorf("%w: the lease of term %d expired", ErrFenced, t.Epoch)
	}
	return nil
}

type termKey struct{}

// WithTerm returns ctx carrying term t, for the writes of a store FencedByContext.
func WithTerm(ctx context.Context, t *Term) context.Context {
	return context.WithValue(ctx, termKey{}, t)
}

// FencedByContext returns a view of s whose every write is fenced by the term its context carries
// (WithTerm): a daemon builds its reconcilers once and each leader term's work runs under a context
// with that term. A write whose context carries none fails with ErrFenced.
func (s *Store) FencedByContext() *Store {
	f := *s
	f.fenceCtx = true
	return &f
}

// term is the term that fences a write with ctx, or nil when s is not fenced.
func (s *Store) term(ctx context.Context) *Term {
	if s.fence != nil || !s.fenceCtx {
		return s.fence
	}
	if t, ok := ctx.Value(termKey{}).(*Term); ok && t != nil {
		return t
	}
	return &Term{} // no term: check refuses it, as not begun by an Elector
}

// Elector campaigns for one lease.
type Elector struct {
	s   *Store
	cfg LeaseConfig

	// Test hooks: beforeRenew runs before each renewal (a test pauses the leader there, or fails the
	// renewal); now is the clock of the renew deadline.
	beforeRenew func(context.Context) error
	now         func() time.Time
}

// Elector returns a campaigner for the lease cfg names.
func (s *Store) Elector(cfg LeaseConfig) (*Elector, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	return &Elector{s: s, cfg: cfg, beforeRenew: func(context.Context) error { return nil }, now: time.Now}, nil
}

// Run campaigns until ctx ends. Each time this replica takes the lease it calls lead with the new term
// and a context that ends when the term does (lease lost, renew deadline passed, lease connection
// lost, or ctx ended), and waits for lead to return before campaigning again: lead must return
// promptly when its context ends. lead returning before that steps down (the lease is released). The lease is renewed on a connection of its own, named
// "byob-agent lease HOLDER" (application_name); losing that connection ends the term. On return the
// lease is released, so another replica takes over without waiting for it to expire.
func (e *Elector) Run(ctx context.Context, lead func(ctx context.Context, t *Term)) error {
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	tick := time.NewTicker(e.cfg.RetryPeriod)
	defer tick.Stop()
	for {
		if conn == nil || conn.IsClosed() {
			var err error
			if conn, err = e.connect(ctx); err != nil {
				e.cfg.Log.Warn("leader lease: cannot connect", "err", err)
				conn = nil
			}
		}
		if conn != nil {
			// Bounded: a lost server must not hold the campaign; a takeover that timed out after
			// committing is this replica's own lease, taken again next time with a new epoch.
			actx, cancel := context.WithTimeout(ctx, e.cfg.RenewDeadline)
			t, err := e.acquire(actx, conn)
			cancel()
			switch {
			case err != nil && ctx.Err() == nil:
				e.cfg.Log.Warn("leader lease: cannot take the lease", "err", err)
			case t != nil:
				e.lead(ctx, conn, t, lead)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func (e *Elector) connect(ctx context.Context) (*pgx.Conn, error) {
	cc := e.s.pool.Config().ConnConfig.Copy()
	cc.RuntimeParams["application_name"] = "byob-agent lease " + e.cfg.Holder
	return pgx.ConnectConfig(ctx, cc)
}

// acquire takes the lease if it is free, expired, or this replica's own (a replica that stepped down
// and campaigns again): a new term, with the epoch incremented. nil: another replica holds it. The
// term's row in leader_terms has the clock time after the lease row's lock was had, so every write
// of the term before it has updated_at before that time (a check of fencing in the database).
func (e *Elector) acquire(ctx context.Context, conn *pgx.Conn) (*Term, error) {
	var epoch int64
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `INSERT INTO leader_lease AS l (name, holder, epoch, expires_at, acquired_at, renewed_at)
			VALUES ($1, $2, 1, now() + make_interval(secs => $3), now(), now())
			ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, epoch = l.epoch + 1,
				expires_at = excluded.expires_at, acquired_at = now(), renewed_at = now()
			WHERE l.expires_at <= now() OR l.holder = excluded.holder
			RETURNING epoch`, e.cfg.Name, e.cfg.Holder, e.cfg.Duration.Seconds()).Scan(&epoch)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO leader_terms (name, epoch, holder, acquired_at) VALUES ($1, $2, $3, clock_timestamp())`,
			e.cfg.Name, epoch, e.cfg.Holder)
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	// Twice the lease: a write that began in the term and is merely slow still commits before a
	// takeover (which waits for it), and a paused one is cut at most that long after it went idle.
	return &Term{Name: e.cfg.Name, Holder: e.cfg.Holder, Epoch: epoch, idle: 2 * e.cfg.Duration}, nil
}

// lead runs one term: lead in a goroutine, renewals here, until the term ends.
func (e *Elector) lead(ctx context.Context, conn *pgx.Conn, t *Term, lead func(context.Context, *Term)) {
	leadCtx, cancel := context.WithCancelCause(ctx)
	t.ctx = leadCtx
	e.cfg.Log.Info("leader lease: leading", "holder", t.Holder, "epoch", t.Epoch)
	done := make(chan struct{})
	go func() {
		defer close(done)
		lead(leadCtx, t)
		cancel(errStepDown) // lead gave up the term (say a write was fenced): stop renewing
	}()
	reason := e.renewUntilLost(leadCtx, conn, t)
	cancel(reason)
	<-done
	if ctx.Err() != nil || errors.Is(reason, errStepDown) {
		e.release(conn, t)
	}
	e.cfg.Log.Info("leader lease: stepped down", "holder", t.Holder, "epoch", t.Epoch, "reason", reason)
}

// renewUntilLost renews every RetryPeriod and returns why the term ended.
func (e *Elector) renewUntilLost(ctx context.Context, conn *pgx.Conn, t *Term) error {
	renewed := e.now() // the acquisition counts as a renewal
	tick := time.NewTicker(e.cfg.RetryPeriod)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-tick.C:
		}
		start := e.now()
		err := e.beforeRenew(ctx)
		if err == nil {
			err = e.renew(ctx, conn, t, renewed.Add(e.cfg.RenewDeadline).Sub(e.now()))
		}
		switch {
		case err == nil:
			renewed = start
		case errors.Is(err, ErrFenced), conn.IsClosed():
			return err
		case e.now().Sub(renewed) >= e.cfg.RenewDeadline:
			return fmt.Errorf("%w: no renewal for %v (renew deadline): %v", ErrFenced, e.now().Sub(renewed).Round(time.Millisecond), err)
		default:
			e.cfg.Log.Warn("leader lease: renewal failed, retrying", "epoch", t.Epoch, "err", err)
		}
	}
}

// renew extends the lease of term t, within budget.
func (e *Elector) renew(ctx context.Context, conn *pgx.Conn, t *Term, budget time.Duration) error {
	if budget <= 0 {
		return errors.New("renew deadline passed")
	}
	ctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	tag, err := conn.Exec(ctx, `UPDATE leader_lease SET expires_at = now() + make_interval(secs => $4), renewed_at = now()
		WHERE name = $1 AND holder = $2 AND epoch = $3`, t.Name, t.Holder, t.Epoch, e.cfg.Duration.Seconds())
	switch {
	case err != nil:
		return fmt.Errorf("renew the leader lease: %w", err)
	case tag.RowsAffected() == 0:
		return fmt.Errorf("%w: another replica took the lease after term %d", ErrFenced, t.Epoch)
	}
	return nil
}

// release ends the lease of a term that stepped down on purpose, so another replica need not wait
// for it to expire.
func (e *Elector) release(conn *pgx.Conn, t *Term) {
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.RenewDeadline)
	defer cancel()
	if conn.IsClosed() { // a renewal was cut short by the stop: pgx closes a connection whose query is cancelled
		c, err := e.connect(ctx)
		if err != nil {
			e.cfg.Log.Warn("leader lease: release failed; the lease expires on its own", "epoch", t.Epoch, "err", err)
			return
		}
		defer c.Close(context.Background())
		conn = c
	}
	if _, err := conn.Exec(ctx, `UPDATE leader_lease SET expires_at = now() WHERE name = $1 AND holder = $2 AND epoch = $3`,
		t.Name, t.Holder, t.Epoch); err != nil {
		e.cfg.Log.Warn("leader lease: release failed; the lease expires on its own", "epoch", t.Epoch, "err", err)
	}
}
