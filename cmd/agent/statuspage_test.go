package main

import (
	"errors"
	"fmt"
	"testing"
	"time"

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
