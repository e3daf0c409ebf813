// Package state provides byob-agent's durable record, one bbolt file (DB) that one process at a time
// opens for writing: the team records of what the agent did for each team, and the SCIM push store of
// the users and groups an identity provider pushed.
//
// A team record holds the phase a team has reached, the storage it was given, the W&B group it got,
// and the external mutation in flight. W&B never tells which bucket a team has, so this record is the
// only place that knows.
//
// The SCIM push store (scim*.go) keeps what Okta or Entra ID pushed into the agent's own SCIM endpoint
// (package scim/server); each live group is a desired W&B team. A userName is unique among users and a
// displayName among live groups, both normalised (NormalizeSCIMName) and compared case-insensitively
// (as strings.EqualFold compares); a deleted group keeps its name, so that its removal can be handled,
// until PurgeDeletedSCIMGroups, but frees its displayName. A group's members are users that exist:
// unknown ids are dropped, and a deleted user leaves every group. Lookups go through indexes kept in
// the record's transaction, lists decode only their page, and updates are prepared outside the write
// transaction (scim_index.go); SetSCIMLimits bounds what clients may store.
//
// Open checks a file whole before using it (DamagedError). Backup and WriteCopy copy the file; Export
// writes the team records as JSON.
package state

import (
	"errors"
	"time"

	"github.com/byob-agent/byob-agent/team"
)

// SchemaVersion is the layout of records this build writes. A state file written by a newer
// schema is refused rather than misread; an older one is migrated when opened for writing.
// Version 2 normalised SCIM names and added the SCIM indexes (scim_migrate.go).
const SchemaVersion = 2

// Phase is how far a team has got. Phases only move forward; failures, conflicts and orphaning are
// recorded beside the phase so the team resumes where it stopped.
type Phase string

const (
	PhaseDesired     Phase = "desired"      // known, nothing verified yet
	PhaseBucketReady Phase = "bucket_ready" // bucket configured and verified
	PhaseTeamCreated Phase = "team_created" // W&B team exists with the recorded storage
	PhaseInSync      Phase = "in_sync"      // everything done
)

// Created reports whether the W&B team exists, which freezes the team's storage.
func (p Phase) Created() bool { return p == PhaseTeamCreated || p == PhaseInSync }

// Provenances of a managed W&B team.
const (
	ProvenanceCreated = "created" // the agent created the W&B team
	ProvenanceAdopted = "adopted" // the team was made by hand and taken over (`adopt` in the teams list)
)

// Op names an external mutation whose intent is recorded before it is made.
type Op string

const (
	OpCreateKey    Op = "create_kms_key"
	OpEnsureBucket Op = "ensure_bucket"
	OpCreateTeam   Op = "create_team"
)

// Intent is an external mutation that was started. If it is still set when the agent starts again,
// the mutation may or may not have happened, and whatever it created is the agent's own.
type Intent struct {
	Op      Op        `json:"op"`
	Target  string    `json:"target"` // bucket name, key alias or team name the op acts on
	Started time.Time `json:"started"`
}

// Record is everything the agent knows about one team. It never holds secrets.
type Record struct {
	Name    string `json:"name"`
	Profile string `json:"profile"`
	Source  string `json:"source,omitempty"`
	Phase   Phase  `json:"phase"`

	// Storage is the storage spec the team's bucket was made from; frozen once the team is created.
	Storage       team.Storage `json:"storage"`
	StorageDigest string       `json:"storageDigest"`
	KMSKeyARN     string       `json:"kmsKeyArn,omitempty"` // resolved key, created or configured
	GroupID       string       `json:"groupId,omitempty"`   // W&B SCIM group id

	Intent *Intent `json:"intent,omitempty"`

	Attempts  int       `json:"attempts,omitempty"` // consecutive failed attempts
	LastError string    `json:"lastError,omitempty"`
	NextRetry time.Time `json:"nextRetry,omitzero"`
	Conflict  string    `json:"conflict,omitempty"` // why the agent will not proceed until an operator acts

	Orphaned bool `json:"orphaned,omitempty"` // no longer desired; bucket and team are kept
	// Registered says the operator has registered the bucket with W&B (dedicated and self-managed
	// instances must list every bucket before a team may use it): `byob-agent state mark-registered`.
	Registered bool `json:"registered,omitempty"`

	// Provenance says how the agent came to manage the W&B team: ProvenanceCreated or ProvenanceAdopted
	// (empty in records written before it was kept: created). AdoptedAt is when a team made by hand
	// was taken over.
	Provenance string    `json:"provenance,omitempty"`
	AdoptedAt  time.Time `json:"adoptedAt,omitzero"`

	// Members as last synced: the desired emails, and the W&B member ids the team had afterwards.
	MemberEmails []string `json:"memberEmails,omitempty"`
	MemberIDs    []string `json:"memberIds,omitempty"`
	// MembersAdded are the W&B user ids the agent added: by default the only ones it may remove.
	MembersAdded []string `json:"membersAdded,omitempty"`
	// MemberUsers maps each synced email to its W&B user id, so a plan can name the members it would
	// add or remove without asking W&B.
	MemberUsers map[string]string `json:"memberUsers,omitempty"`
	// MemberRoles are the team roles the agent set, by email: a member whose role rule goes away is
	// set back to member; roles set by hand are left alone.
	MemberRoles map[string]string `json:"memberRoles,omitempty"`
	// InitialMemberIDs are the members W&B put in the team when it was created (its org service
	// accounts): never removed.
	InitialMemberIDs []string  `json:"initialMemberIds,omitempty"`
	CreatedAt        time.Time `json:"createdAt"`
	UpdatedAt        time.Time `json:"updatedAt"`
	BucketReady      time.Time `json:"bucketReadyAt,omitzero"`
	TeamCreated      time.Time `json:"teamCreatedAt,omitzero"`
	LastVerified     time.Time `json:"lastVerifiedAt,omitzero"` // last successful bucket verification
	// History is what the daemon's reconciles did to the team, oldest first, at most MaxHistory
	// events (history.go).
	History []Event `json:"history,omitempty"`
}

// Status is the one-word summary shown to operators.
func (r *Record) Status() string {
	switch {
	case r.Conflict != "":
		return "conflict"
	case r.LastError != "":
		return "failed"
	case r.Orphaned:
		return "orphaned"
	}
	return string(r.Phase)
}

// ErrNotFound is returned for a team the state has no record of.
var ErrNotFound = errors.New("no such team in state")
