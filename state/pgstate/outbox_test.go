package pgstate

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/byob-agent/byob-agent/state"
)

func TestTriggers(t *testing.T) {
	s := open(t)
	ctx := t.Context()
	wakes := make(chan struct{}, 100)
	lctx, stop := context.WithCancel(ctx)
	listened := make(chan error, 1)
	go func() { listened <- s.ListenTriggers(lctx, func() { wakes <- struct{}{} }) }()
	waitWake := func(what string) {
		t.Helper()
		select {
		case <-wakes:
		case <-time.After(wait):
			t.Fatalf("no wake-up %s within %v", what, wait)
		}
	}
	waitWake("once listening")

	if err := s.AddTriggers(ctx, "okta", []string{"group:okta:1", "all"}); err != nil {
		t.Fatal(err)
	}
	waitWake("after a trigger was added")
	if err := s.AddTriggers(ctx, "scim", []string{"group:scim:a"}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Triggers(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	want := []Trigger{{Source: "okta", Key: "group:okta:1"}, {Source: "okta", Key: "all"}, {Source: "scim", Key: "group:scim:a"}}
	if len(got) != len(want) {
		t.Fatalf("triggers = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i].Source != want[i].Source || got[i].Key != want[i].Key || (i > 0 && got[i].ID <= got[i-1].ID) {
			t.Fatalf("triggers = %+v, want %+v in id order", got, want)
		}
	}
	if page, _ := s.Triggers(ctx, got[0].ID, 1); len(page) != 1 || page[0].ID != got[1].ID {
		t.Fatalf("page after %d = %+v, want trigger %d", got[0].ID, page, got[1].ID)
	}

	// A fenced store whose term ended deletes nothing; the current term deletes.
	a := newCandidate(t, s, "a", 10*time.Second)
	term := a.term(t)
	if err := s.Fenced(term).DeleteTriggers(ctx, []int64{got[0].ID}); err != nil {
		t.Fatal(err)
	}
	a.stop()
	a.end(t, term)
	if err := s.Fenced(term).DeleteTriggers(ctx, []int64{got[1].ID}); !errors.Is(err, ErrFenced) {
		t.Fatalf("delete after the term = %v, want ErrFenced", err)
	}
	left, err := s.Triggers(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, tr := range left {
		ids = append(ids, tr.ID)
	}
	if !slices.Equal(ids, []int64{got[1].ID, got[2].ID}) {
		t.Fatalf("left %v, want %v", ids, []int64{got[1].ID, got[2].ID})
	}
	stop()
	if err := <-listened; err != nil {
		t.Fatalf("ListenTriggers after its context ended: %v", err)
	}
}

// TestLeadReturnStepsDown: a lead function that returns (its write was fenced, say) ends the term and
// releases the lease, so another replica leads without waiting for it to expire.
func TestLeadReturnStepsDown(t *testing.T) {
	s := open(t)
	e, err := s.Elector(LeaseConfig{Name: "test", Holder: "quitter", Duration: time.Hour, RenewDeadline: 30 * time.Minute, RetryPeriod: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	terms := make(chan *Term, 10)
	done := make(chan error, 1)
	go func() {
		done <- e.Run(ctx, func(ctx context.Context, term *Term) {
			terms <- term
			if term.Epoch == 1 {
				return // gives up at once
			}
			<-ctx.Done()
		})
	}()
	first := <-terms
	b := newCandidate(t, s, "b", time.Hour) // an hour-long lease: only a release lets b in
	// Either b or the quitter itself takes the released lease next; both are a new epoch.
	select {
	case next := <-terms:
		if next.Epoch != first.Epoch+1 {
			t.Fatalf("quitter's next term %d, want %d", next.Epoch, first.Epoch+1)
		}
	case bt := <-b.started:
		if bt.Epoch != first.Epoch+1 {
			t.Fatalf("b's term %d, want %d", bt.Epoch, first.Epoch+1)
		}
	case <-time.After(wait):
		t.Fatalf("nobody led after the leader stepped down, within %v", wait)
	}
	if err := s.Fenced(first).DeleteTriggers(t.Context(), []int64{1}); !errors.Is(err, ErrFenced) {
		t.Fatalf("write of the abandoned term = %v, want ErrFenced", err)
	}
	cancel()
	<-done
}

// TestFencedByContext: a store fenced by context writes under the term its context carries, records
// that term's epoch, and refuses a write with no term or an ended one.
func TestFencedByContext(t *testing.T) {
	s := open(t)
	f := s.FencedByContext()
	a := newCandidate(t, s, "a", 10*time.Second)
	term := a.term(t)
	ctx := WithTerm(t.Context(), term)
	if err := setPhase(ctx, f, "t1", state.PhaseInSync); err != nil {
		t.Fatalf("write under the current term: %v", err)
	}
	checkEpochs(t, s, map[string]int64{"t1": term.Epoch})
	if err := setPhase(t.Context(), f, "t2", state.PhaseInSync); !errors.Is(err, ErrFenced) {
		t.Fatalf("write without a term = %v, want ErrFenced", err)
	}
	a.stop()
	a.end(t, term)
	if err := setPhase(ctx, f, "t1", state.PhaseDesired); !errors.Is(err, ErrFenced) {
		t.Fatalf("write under the ended term = %v, want ErrFenced", err)
	}
	checkEpochs(t, s, map[string]int64{"t1": term.Epoch})
}
