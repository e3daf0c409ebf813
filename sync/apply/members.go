package apply

import (
	"context"
	"fmt"
	"maps"
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
	pol := t.r.Members
	current := memberIDs(t.group.Members)
	wanted := map[string]bool{}
	users := map[string]string{} // email -> W&B user id, of the wanted members W&B knows
	var unknown []string
	for _, email := range t.p.Desired.Members {
		u, err := t.r.WandB.FindUser(ctx, email)
		if err != nil {
			return err
		}
		if u == nil && pol.CreateUsers {
			created, err := t.r.WandB.CreateUser(ctx, email)
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
		wanted[u.ID] = true
		users[email] = u.ID
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
	if len(current) > 0 && float64(len(remove)) > pol.MaxRemove*float64(len(current)) {
		return fmt.Errorf("sync members: refusing to remove %d of the team's %d members (more than %.0f%%): "+
			"if the source really lost them, raise members.maxRemoveShare for one run", len(remove), len(current), 100*pol.MaxRemove)
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
		rec.MemberEmails = slices.DeleteFunc(slices.Clone(t.p.Desired.Members), func(e string) bool { return slices.Contains(unknown, e) })
		rec.MemberIDs = after
		rec.MemberUsers = users
		rec.MembersAdded = slices.DeleteFunc(rec.MembersAdded, func(id string) bool { return slices.Contains(remove, id) })
	}); err != nil {
		return err
	}
	return t.syncRoles(ctx, users)
}

// syncRoles sets the team role of every member a role rule names, and sets members whose rule went
// away back to member. Roles set by hand in W&B are left alone. Each change is recorded right after it
// is made, so a crash repeats at most one PATCH, which is idempotent.
func (t *teamRun) syncRoles(ctx context.Context, users map[string]string) error {
	set := func(email, role string) error {
		if err := t.r.WandB.SetTeamRole(ctx, users[email], t.p.Team, role); err != nil {
			return err
		}
		t.changes = append(t.changes, fmt.Sprintf("members: %s is now %s", email, role))
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
		if _, member := users[email]; !member {
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
