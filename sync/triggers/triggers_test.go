package triggers

import (
	"context"
	"log/slog"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/byob-agent/byob-agent/internal/testsupport/testenv"
	"github.com/byob-agent/byob-agent/state/pgstate"
	"github.com/byob-agent/byob-agent/sync/queuekey"
)

const wait = 30 * time.Second

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.SharedPostgres.Close()
	os.Exit(code)
}

// relay runs a Relay on s until the test ends and returns the keys it queues.
func relay(t *testing.T, s *pgstate.Store, poll time.Duration) (*Relay, <-chan queuekey.Key) {
	keys := make(chan queuekey.Key, 100)
	r := &Relay{Outbox: s, Enqueue: func(_ string, k queuekey.Key) { keys <- k }, Poll: poll, Log: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return r, keys
}

func next(t *testing.T, keys <-chan queuekey.Key, n int) []queuekey.Key {
	t.Helper()
	var got []queuekey.Key
	for range n {
		select {
		case k := <-keys:
			got = append(got, k)
		case <-time.After(wait):
			t.Fatalf("queued %v, then nothing within %v", got, wait)
		}
	}
	return got
}

func left(t *testing.T, s *pgstate.Store) []string {
	t.Helper()
	ts, err := s.Triggers(t.Context(), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, tr := range ts {
		keys = append(keys, tr.Key)
	}
	return keys
}

// TestRelay: triggers waiting at the start of a term and added during it are queued (a NOTIFY wakes
// the relay: the poll is an hour); a successful reconcile removes only the triggers queued before it
// began; what is left is queued by the next leader's relay.
func TestRelay(t *testing.T) {
	dsn := testenv.PostgresDatabase(t)
	s, err := pgstate.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	if err := s.AddTriggers(ctx, "okta", []string{"group:okta:1"}); err != nil {
		t.Fatal(err)
	}
	r, keys := relay(t, s, time.Hour)
	if got := next(t, keys, 1); got[0] != "group:okta:1" {
		t.Fatalf("queued %v, want the waiting trigger", got)
	}
	if err := s.AddTriggers(ctx, "scim", []string{"group:scim:a", "all"}); err != nil {
		t.Fatal(err)
	}
	if got := next(t, keys, 2); !slices.Equal(got, []queuekey.Key{"group:scim:a", "all"}) {
		t.Fatalf("queued %v after the notification", got)
	}

	began := time.Now()
	if err := s.AddTriggers(ctx, "okta", []string{"group:okta:1"}); err != nil { // during the reconcile
		t.Fatal(err)
	}
	next(t, keys, 1)
	r.Reconciled(ctx, "group:okta:1", began)
	r.Reconciled(ctx, "all", began)
	if got := left(t, s); !slices.Equal(got, []string{"group:scim:a", "group:okta:1"}) {
		t.Fatalf("outbox holds %v, want the unreconciled key and the trigger that came during the reconcile", got)
	}

	_, keys2 := relay(t, s, time.Hour) // the next leader
	if got := next(t, keys2, 2); !slices.Equal(got, []queuekey.Key{"group:scim:a", "group:okta:1"}) {
		t.Fatalf("next leader queued %v", got)
	}
}
