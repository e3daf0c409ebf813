package config

import (
	"time"

	"github.com/byob-agent/byob-agent/state/pgstate"
)

// PostgresState keeps the state in a PostgreSQL database that several replicas share; one of them
// leads (runs reconciles) under a fenced lease with these timings (zero: pgstate's defaults).
type PostgresState struct {
	DSN           Secret // a libpq connection string or postgres:// URL; it may hold a password
	LeaseDuration time.Duration
	RenewDeadline time.Duration
	RetryPeriod   time.Duration
}

// postgresState reads state.postgres; nil when absent.
func (f *file) postgresState(state mapping) *PostgresState {
	m, ok := f.section(state, "postgres", "", "dsn", "dsnFile", "leaseDuration", "renewDeadline", "retryPeriod")
	if !ok {
		return nil
	}
	p := &PostgresState{DSN: f.secret(m, "dsn", "is required: set dsn (say ${BYOB_STATE_POSTGRES_DSN}) or dsnFile, the PostgreSQL connection string")}
	var last string // the last timing given, where a mismatch is reported
	for _, t := range []struct {
		key string
		dst *time.Duration
	}{{"leaseDuration", &p.LeaseDuration}, {"renewDeadline", &p.RenewDeadline}, {"retryPeriod", &p.RetryPeriod}} {
		d, n := f.duration(m, t.key)
		if n == nil {
			continue
		}
		if d <= 0 {
			f.problem(n, m.at(t.key), "must be positive, got %s", d)
			continue
		}
		*t.dst, last = d, t.key
	}
	if last != "" {
		if _, _, _, err := pgstate.LeaseTimings(p.LeaseDuration, p.RenewDeadline, p.RetryPeriod); err != nil {
			f.problem(m.vals[last], m.at(last), "%v (defaults: leaseDuration %v, renewDeadline %v, retryPeriod %v)",
				err, pgstate.DefaultLeaseDuration, pgstate.DefaultRenewDeadline, pgstate.DefaultRetryPeriod)
		}
	}
	return p
}
