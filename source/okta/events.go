package okta

import (
	"slices"
	"strings"

	"github.com/byob-agent/byob-agent/sync/queuekey"
)

// SourceKey is the name Okta groups go by in queue keys (queuekey.Group(SourceKey, id)), for the event
// hook receiver, the System Log poller and the daemon alike.
const SourceKey = "okta"

// LogEvent is the part of an Okta System Log event the agent reads. Event hooks deliver the same
// LogEvent objects (https://developer.okta.com/docs/concepts/event-hooks/), so the hook receiver and the
// System Log poller both map events to queue keys with EventKey.
type LogEvent struct {
	UUID      string      `json:"uuid"`
	EventType string      `json:"eventType"`
	Target    []LogTarget `json:"target"`
}

// LogTarget is one target of a LogEvent: for group events a UserGroup and, for membership events, a User.
type LogTarget struct {
	ID   string `json:"id"`
	Type string `json:"type"`
}

// groupEvents concern one group, named by the event's UserGroup target.
var groupEvents = []string{
	"group.user_membership.add",
	"group.user_membership.remove",
	"group.lifecycle.create",
	"group.lifecycle.delete",
	"group.profile.update",
}

// userEvents change whether a user counts as a member of every group they are in (the source skips
// DEPROVISIONED users; SUSPENDED ones stay members, so suspension events change nothing). Okta logs an
// admin's activation as user.lifecycle.activate, and a reactivation by provisioning or import as
// user.lifecycle.reactivate followed by user.lifecycle.activate
// (https://support.okta.com/help/s/article/Why-Reactivating-an-Okta-User-Account-Appears-as-an-Activation-Event-in-System-Log).
var userEvents = []string{
	"user.lifecycle.deactivate",
	"user.lifecycle.activate",
	"user.lifecycle.reactivate",
}

// EventTypes are the event types that change a selected group or who counts as its member: the ones to
// subscribe an event hook to, and the System Log poller's filter.
func EventTypes() []string { return slices.Concat(groupEvents, userEvents) }

// EventKey is the queue key an event asks to reconcile; ok is false for event types the agent ignores.
// A user event names no group (the user may be in any team), and a group event without a usable
// UserGroup target cannot be told: both ask for queuekey.All.
func EventKey(e LogEvent) (key queuekey.Key, ok bool) {
	switch {
	case slices.Contains(userEvents, e.EventType):
		return queuekey.All, true
	case slices.Contains(groupEvents, e.EventType):
		for _, t := range e.Target {
			if t.Type == "UserGroup" && validID(t.ID) {
				return queuekey.Group(SourceKey, t.ID), true
			}
		}
		return queuekey.All, true
	}
	return "", false
}

// eventFilter is the System Log filter expression that selects EventTypes:
// `eventType eq "a" or eventType eq "b" ...` (https://developer.okta.com/docs/reference/api/system-log/#expression-filter).
func eventFilter() string {
	var parts []string
	for _, t := range EventTypes() {
		parts = append(parts, `eventType eq "`+t+`"`)
	}
	return strings.Join(parts, " or ")
}
