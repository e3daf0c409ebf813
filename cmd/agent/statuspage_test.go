package main

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/byob-agent/byob-agent/state"
	"github.com/byob-agent/byob-agent/sync/apply"
	"github.com/byob-agent/byob-agent/sync/plan"
	"github.com/byob-agent/byob-agent/sync/queuekey"
)

// TestPageRecorderEvents turns reconcile results into history events: the steps noted for a team go
// into its event, teams that did nothing get none, and a failure's message is the event's error.
func TestPageRecorderEvents(t *testing.T) {
	var p pageRecorder
	p.step("ml", plan.StepEnsureBucket, nil)
	p.step("ml", plan.StepCreateTeam, nil)
	p.step("cv", plan.StepEnsureBucket, errors.New("AccessDenied"))
	got := p.events(queuekey.All, []apply.Result{
		{Team: "ml", Outcome: apply.OutcomeCreated, Detail: "create team", Changes: []string{"s3: versioning on"}},
		{Team: "cv", Outcome: apply.OutcomeFailed, Detail: "ensure_bucket: AccessDenied", Err: errors.New("AccessDenied")},
		{Team: "idle", Outcome: apply.OutcomeUnchanged},
		{Team: "backing-off", Outcome: apply.OutcomeWaiting},
	}, false, time.Second)
	if len(got) != 2 {
		t.Fatalf("events for %d teams: %+v", len(got), got)
	}
	ml, cv := got["ml"], got["cv"]
	if ml.Outcome != "created" || ml.Detail != "create team" || ml.Error != "" || len(ml.Steps) != 2 || ml.Steps[1].Step != "create_team" || ml.Changes[0] != "s3: versioning on" {
		t.Errorf("ml = %+v", ml)
	}
	if cv.Outcome != "failed" || cv.Error != "ensure_bucket: AccessDenied" || cv.Detail != "" || len(cv.Steps) != 1 || cv.Steps[0].Error != "AccessDenied" {
		t.Errorf("cv = %+v", cv)
	}
	// The steps were used up: the next reconcile starts afresh.
	if again := p.events(queuekey.Team("ml"), []apply.Result{{Team: "ml", Outcome: apply.OutcomeUnchanged}}, false, time.Second); len(again) != 0 {
		t.Errorf("steps left over: %+v", again)
	}
}

// TestPageRecorderBounds keeps the latest reconciles for the chart and a bounded number of steps.
func TestPageRecorderBounds(t *testing.T) {
	var p pageRecorder
	for i := range recentReconciles + 5 {
		p.events(queuekey.Team(fmt.Sprint("t", i)), nil, i%2 == 0, time.Duration(i)*time.Millisecond)
	}
	rs := p.reconciles()
	if len(rs) != recentReconciles || rs[0].Key != "team:t5" || rs[len(rs)-1].Took != time.Duration(recentReconciles+4)*time.Millisecond {
		t.Errorf("kept %d reconciles, first %+v", len(rs), rs[0])
	}
	for range maxStepsBuffered * 2 {
		p.step("loop", plan.StepCheckDrift, nil)
	}
	if e := p.events(queuekey.All, []apply.Result{{Team: "loop", Outcome: apply.OutcomeVerified}}, false, 0); len(e["loop"].Steps) != maxStepsBuffered {
		t.Errorf("kept %d steps", len(e["loop"].Steps))
	}
	if k1, k2 := p.sessionKey(), p.sessionKey(); len(k1) != 32 || &k1[0] != &k2[0] {
		t.Error("the session key is not one 32-byte key per process")
	}
}

// TestPageRecordsHistory writes each team's event into its record, and creates no record for a team the
// state does not know.
func TestPageRecordsHistory(t *testing.T) {
	db, err := state.Open(filepath.Join(t.TempDir(), "state.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	d := &daemon{db: db, work: db, log: slog.New(slog.DiscardHandler)}
	const known = 300
	var results []apply.Result
	for i := range known {
		name := fmt.Sprint("team-", i)
		if _, err := db.Update(t.Context(), name, func(r *state.Record) error { r.Phase = state.PhaseDesired; return nil }); err != nil {
			t.Fatal(err)
		}
		d.page.step(name, plan.StepEnsureBucket, nil)
		results = append(results, apply.Result{Team: name, Outcome: apply.OutcomeCreated})
	}
	results = append(results, apply.Result{Team: "unknown", Outcome: apply.OutcomeFailed, Detail: "x"})
	start := time.Now()
	d.recordHistory(queuekey.All, results, nil, time.Second)
	t.Logf("%d history events written in %v", known, time.Since(start))
	recs, err := db.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != known {
		t.Fatalf("%d records, want %d: a record was made for a team the state did not know", len(recs), known)
	}
	for _, r := range recs {
		if len(r.History) != 1 || r.History[0].Outcome != "created" || len(r.History[0].Steps) != 1 {
			t.Fatalf("%s: history %+v", r.Name, r.History)
		}
	}
}
