package apply

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/byob-agent/byob-agent/scim/wandb"
	"github.com/byob-agent/byob-agent/state"
	"github.com/byob-agent/byob-agent/sync/plan"
	"github.com/byob-agent/byob-agent/team"
)

// syncMembers makes the W&B team's members follow the source: resolve the wanted emails to W&B users
// (creating missing ones when allowed), add who is missing, and remove who is no longer wanted among
// the members the policy lets the agent remove. A run that would remove more than the allowed share
// is refused: an IdP outage that returns empty groups must not empty W&B teams.
func (t *teamRun) syncMembers(ctx context.Context) error {
	if t.group == nil {
		return fmt.Errorf("sync members: W&B team %q not known yet", t.p.Team)
	}
	if err := t.flush(ctx); err != nil { // the team's creation is on disk before users are created or added
		return err
	}
	pol := t.r.Members
	current := memberIDs(t.group.Members)
	wanted := map[string]bool{}
	users := map[string]string{}            // email -> W&B user id, of the wanted members W&B knows
	roles := map[string]map[string]string{} // email -> team roles as the lookup showed them (nil: not shown)
	var unknown, seatless []string
	for _, email := range t.p.Desired.Members {
		u, err := t.r.WandB.FindUser(ctx, email)
		if err != nil {
			return err
		}
		if u == nil && pol.CreateUsers {
			// On Multi-tenant Cloud the user is created in this team (the client sends the teams
			// extension only there); adding them again below is harmless.
			created, err := t.r.WandB.CreateUserInTeams(ctx, email, []string{t.p.Team})
			if seatLimit(err) {
				// One user W&B cannot take must not cost the team its other members: skip them, say
				// so, and try again next run (they stay out of the record, like unknown members).
				t.warn("members: W&B user %s was not created, the organisation's seat limit looks reached; skipped, tried again next run: %v", email, err)
				seatless = append(seatless, email)
				continue
			}
			if err != nil {
				return err
			}
			t.changes = append(t.changes, "members: created W&B user "+email)
			u = &created
		}
		if u == nil {
			unknown = append(unknown, email)
			continue
		}
		users[email], roles[email] = u.ID, u.TeamRoles
		if plan.Protected(&t.rec, u.ID) {
			// A member W&B put in the team at creation (an organisation service account): member
			// operations are for users only, so it is never added, removed or given a role.
			t.log.Info("member is a W&B service account of the team: left alone", "member", email, "user_id", u.ID)
			continue
		}
		wanted[u.ID] = true
	}
	var add, remove []string
	for id := range wanted {
		if !slices.Contains(current, id) {
			add = append(add, id)
		}
	}
	for _, id := range current {
		if !wanted[id] && plan.Removable(&t.rec, id, pol.Authoritative) {
			remove = append(remove, id)
		}
	}
	slices.Sort(add)
	slices.Sort(remove)
	// The share is of the team's users: its service accounts are never removed, and counting them
	// would let an outage empty a team that has several.
	userCount := len(slices.DeleteFunc(slices.Clone(current), func(id string) bool { return plan.Protected(&t.rec, id) }))
	if userCount > 0 && float64(len(remove)) > pol.MaxRemove*float64(userCount) {
		return fmt.Errorf("sync members: refusing to remove %d of the team's %d members (more than %.0f%%): "+
			"if the source really lost them, raise members.maxRemoveShare for one run", len(remove), userCount, 100*pol.MaxRemove)
	}
	// Record the additions first: a crash after the PATCH must not leave members we added unowned.
	if err := t.update(ctx, func(rec *state.Record) { rec.MembersAdded = union(rec.MembersAdded, add) }); err != nil {
		return err
	}
	if len(add) > 0 {
		if err := t.r.WandB.AddMembers(ctx, t.group.ID, add); err != nil {
			return err
		}
		t.changes = append(t.changes, fmt.Sprintf("members: added %d", len(add)))
	}
	for _, id := range remove {
		if err := t.r.WandB.RemoveMember(ctx, t.group.ID, id); err != nil {
			return err
		}
	}
	if len(remove) > 0 {
		t.changes = append(t.changes, fmt.Sprintf("members: removed %d", len(remove)))
	}
	if len(unknown) > 0 {
		t.changes = append(t.changes, fmt.Sprintf("members: %d not in W&B and not created (members.createUsers is off): %s", len(unknown), strings.Join(unknown, ", ")))
	}
	after := slices.DeleteFunc(union(current, add), func(id string) bool { return slices.Contains(remove, id) })
	if err := t.update(ctx, func(rec *state.Record) {
		// Unknown emails stay out of the record, so later runs look for them again (a user may appear
		// in W&B after their first login).
		rec.MemberEmails = slices.DeleteFunc(slices.Clone(t.p.Desired.Members), func(e string) bool {
			return slices.Contains(unknown, e) || slices.Contains(seatless, e)
		})
		rec.MemberIDs = after
		rec.MemberUsers = users
		rec.MembersAdded = slices.DeleteFunc(rec.MembersAdded, func(id string) bool { return slices.Contains(remove, id) })
	}); err != nil {
		return err
	}
	return t.syncRoles(ctx, users, roles)
}

// syncRoles sets the team role of every member a role rule names, and sets members whose rule went
// away back to member. Roles set by hand in W&B are left alone. Each change is recorded right after it
// is made, so a crash repeats at most one PATCH, which is idempotent.
// known holds each user's team roles as this run's lookup showed them; a user it has none for is read.
func (t *teamRun) syncRoles(ctx context.Context, users map[string]string, known map[string]map[string]string) error {
	set := func(email, role string) error {
		id := users[email]
		before := known[email]
		if before == nil {
			var err error
			if before, err = t.r.WandB.UserTeamRoles(ctx, id); err != nil {
				return err
			}
		}
		after, err := t.r.WandB.AssignTeamRole(ctx, id, t.p.Team, role)
		if err != nil {
			return err
		}
		t.changes = append(t.changes, fmt.Sprintf("members: %s is now %s", email, role))
		t.checkOtherTeamRoles(ctx, email, id, before, after)
		return t.update(ctx, func(rec *state.Record) {
			if role == team.RoleMember {
				delete(rec.MemberRoles, email)
				return
			}
			if rec.MemberRoles == nil {
				rec.MemberRoles = map[string]string{}
			}
			rec.MemberRoles[email] = role
		})
	}
	want := plan.WantedRoles(t.p.Desired, &t.rec)
	for _, email := range slices.Sorted(maps.Keys(want)) {
		if t.rec.MemberRoles[email] != want[email] {
			if err := set(email, want[email]); err != nil {
				return err
			}
		}
	}
	for _, email := range slices.Sorted(maps.Keys(t.rec.MemberRoles)) {
		if _, still := want[email]; still {
			continue
		}
		if id, member := users[email]; !member || plan.Protected(&t.rec, id) {
			// No longer wanted in the team (or unknown): nothing to reset; forget the role.
			if err := t.update(ctx, func(rec *state.Record) { delete(rec.MemberRoles, email) }); err != nil {
				return err
			}
			continue
		}
		if err := set(email, team.RoleMember); err != nil {
			return err
		}
	}
	return nil
}

// checkOtherTeamRoles compares a user's roles after a teamRoles PATCH of this team (as the PATCH answer
// lists them, or re-read when it does not) with before, and warns when their role in another team
// changed. W&B documents the PATCH as a "replace" of teamRoles
// (https://docs.wandb.ai/platform/hosting/iam/scim, "Assign a team role"); that a replace naming one
// team leaves the user's other teams alone is an inference, so it is checked, not trusted. A change is
// reported (log, result warning), not undone: the agent does not own the other teams' roles.
func (t *teamRun) checkOtherTeamRoles(ctx context.Context, email, id string, before, after map[string]string) {
	if after == nil {
		var err error
		if after, err = t.r.WandB.UserTeamRoles(ctx, id); err != nil {
			t.warn("members: could not re-read %s after setting their role, so a change to their roles in other teams would go unseen: %v", email, err)
			return
		}
	}
	var changed []string
	for _, other := range slices.Sorted(maps.Keys(union2(before, after))) {
		if other == t.p.Team || before[other] == after[other] {
			continue
		}
		changed = append(changed, fmt.Sprintf("%s: %s -> %s", other, roleOrNone(before[other]), roleOrNone(after[other])))
	}
	if len(changed) > 0 {
		t.warn("members: setting the role of %s in this team changed their role in other W&B teams (%s); "+
			"W&B does not document that a teamRoles replace leaves other teams alone: check those teams", email, strings.Join(changed, "; "))
	}
}

func roleOrNone(r string) string {
	if r == "" {
		return "(none)"
	}
	return r
}

// union2 is the set of keys of a and b.
func union2(a, b map[string]string) map[string]bool {
	out := make(map[string]bool, len(a)+len(b))
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

// seatLimit reports whether creating a user failed because the organisation has no seat left. W&B
// says user operations "may fail if organization seat limits are reached"
// (https://docs.wandb.ai/platform/hosting/iam/scim) but documents neither the status nor the words.
// Inference: a 402, or any other 4xx but 401 (the key), 404, 409 (exists) and 429 (throttled) whose
// detail mentions a seat, a licence or a limit.
func seatLimit(err error) bool {
	var ae *wandb.APIError
	if !errors.As(err, &ae) || ae.StatusCode < 400 || ae.StatusCode >= 500 {
		return false
	}
	switch ae.StatusCode {
	case http.StatusPaymentRequired:
		return true
	case http.StatusUnauthorized, http.StatusNotFound, http.StatusConflict, http.StatusTooManyRequests:
		return false
	}
	d := strings.ToLower(ae.Detail)
	return strings.Contains(d, "seat") || strings.Contains(d, "licen") || strings.Contains(d, "limit")
}

func memberIDs(ms []wandb.Member) []string {
	ids := make([]string, 0, len(ms))
	for _, m := range ms {
		ids = append(ids, m.Value)
	}
	return ids
}

// union returns the sorted union of a and b without duplicates.
func union(a, b []string) []string {
	out := slices.Concat(a, b)
	slices.Sort(out)
	return slices.Compact(out)
}
