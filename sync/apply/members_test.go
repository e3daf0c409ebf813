package apply_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/byob-agent/byob-agent/internal/testsupport/applytest"
	"github.com/byob-agent/byob-agent/internal/testsupport/wandbemu"
	"github.com/byob-agent/byob-agent/scim/wandb"
	"github.com/byob-agent/byob-agent/state"
	"github.com/byob-agent/byob-agent/sync/apply"
	"github.com/byob-agent/byob-agent/team"
)

// TestServiceAccountsAreLeftAlone: W&B adds every organisation service account to a new team and
// documents member operations for users only (https://docs.wandb.ai/platform/hosting/iam/scim). In
// owned and authoritative mode, for a team the agent created and one it adopted after a crash, member
// sync never adds, removes or re-roles the service account (even when the source names it, with a
// role rule), the removal share is of users only, orphan removal keeps it, and plan never shows it.
func TestServiceAccountsAreLeftAlone(t *testing.T) {
	for _, authoritative := range []bool{false, true} {
		for _, adopted := range []bool{false, true} {
			t.Run(fmt.Sprintf("authoritative=%v adopted=%v", authoritative, adopted), func(t *testing.T) {
				e := applytest.NewEnv(t)
				e.Rec.Members = apply.MembersPolicy{Sync: true, Authoritative: authoritative, MaxRemove: 0.5, RemoveOnOrphan: true}
				sa := e.ServiceAccount
				var touched atomic.Int32 // requests on the service account's own user resource
				fault := func(r *http.Request) wandbemu.Fault {
					if r.Method != http.MethodGet && r.URL.Path == "/scim/Users/"+url.PathEscape(sa) {
						touched.Add(1)
					}
					return wandbemu.Fault{}
				}
				e.Fault.Store(&fault)
				ada, bob := e.Emu.AddUser("ada", "ada@example.com"), e.Emu.AddUser("bob", "bob@example.com")
				if adopted {
					// A crash after W&B created the team, before the answer was recorded.
					st := applytest.Storage("wandb-ml")
					if _, err := e.Store.Update(t.Context(), "ml", func(r *state.Record) error {
						r.Profile, r.Phase, r.Storage, r.StorageDigest, r.KMSKeyARN = "main", state.PhaseBucketReady, st, st.Digest(), st.KMSKeyARN
						r.Intent = &state.Intent{Op: state.OpCreateTeam, Target: "ml"}
						return nil
					}); err != nil {
						t.Fatal(err)
					}
					if _, err := e.Rec.WandB.(*wandb.Client).CreateGroup(t.Context(), wandb.NewGroup{DisplayName: "ml", StorageBucket: wandb.BucketFor(st, st.KMSKeyARN)}); err != nil {
						t.Fatal(err)
					}
				}
				withRoles := func(members ...string) []team.Team {
					tm := memberTeam("ml", members...)
					// The source names the service account, with a role: it must still be left alone.
					tm.Roles = map[string]string{"ada@example.com": team.RoleAdmin, applytest.ServiceAccountName: team.RoleAdmin, "bob@example.com": team.RoleViewer}
					return []team.Team{tm}
				}
				check := func(step string, res map[string]apply.Result, wantOutcome apply.Outcome, want ...string) {
					t.Helper()
					if res["ml"].Outcome != wantOutcome {
						t.Fatalf("%s: %+v", step, res["ml"])
					}
					want = append(want, sa)
					slices.Sort(want)
					if got := e.Members(t, "ml"); !slices.Equal(got, want) {
						t.Fatalf("%s: members %v, want %v (the service account included)", step, got, want)
					}
					if r := e.Emu.TeamRole(sa, "ml"); r != "" || touched.Load() != 0 {
						t.Fatalf("%s: the service account's role is %q, %d requests changed its user", step, r, touched.Load())
					}
				}
				planOf := func(members ...string) string {
					t.Helper()
					plans, err := e.Rec.Plan(t.Context(), withRoles(members...), apply.PlanOptions{})
					if err != nil {
						t.Fatal(err)
					}
					return plans[0].Summary()
				}

				if adopted {
					// The adopting run records the team; its members follow in the next run.
					check("adopt", e.Sync(t, withRoles("ada@example.com", "bob@example.com", applytest.ServiceAccountName)), apply.OutcomeCreated)
					check("members", e.Sync(t, withRoles("ada@example.com", "bob@example.com", applytest.ServiceAccountName)), apply.OutcomeRepaired, ada, bob)
				} else {
					check("create", e.Sync(t, withRoles("ada@example.com", "bob@example.com", applytest.ServiceAccountName)), apply.OutcomeCreated, ada, bob)
				}
				if got := planOf("ada@example.com", applytest.ServiceAccountName); strings.Contains(got, applytest.ServiceAccountName) || strings.Contains(got, sa) || !strings.Contains(got, "remove bob@example.com") {
					t.Errorf("plan after bob left: %q; want bob's removal and nothing about the service account", got)
				}
				check("bob left", e.Sync(t, withRoles("ada@example.com", applytest.ServiceAccountName)), apply.OutcomeRepaired, ada)
				if got := planOf("ada@example.com", applytest.ServiceAccountName); got != "no change" {
					t.Errorf("converged plan: %q", got)
				}
				// An outage empties the group: removing ada is all of the team's users, refused; the
				// service account does not count towards the share.
				res := e.Sync(t, withRoles())
				if !strings.Contains(res["ml"].Detail, "refusing to remove 1 of the team's 1 members") {
					t.Errorf("outage: %+v", res["ml"])
				}
				check("outage", res, apply.OutcomeFailed, ada)
				// The group is gone: orphan removal takes the members the agent added, not the service account.
				check("orphaned", e.Sync(t, nil), apply.OutcomeRepaired)
			})
		}
	}
}

// TestRoleChangeInAnotherTeamIsReported: that a teamRoles replace naming one team leaves the user's
// other teams alone is an inference; the agent re-reads the user after the PATCH and reports a change
// elsewhere (without failing the team).
func TestRoleChangeInAnotherTeamIsReported(t *testing.T) {
	for _, otherChanges := range []bool{false, true} {
		t.Run(fmt.Sprintf("other team's role changes=%v", otherChanges), func(t *testing.T) {
			e := applytest.NewEnv(t)
			e.Rec.Members = apply.MembersPolicy{Sync: true, MaxRemove: 0.5}
			client := e.Rec.WandB.(*wandb.Client)
			ada := e.Emu.AddUser("ada", "ada@example.com")
			if _, err := client.CreateGroup(t.Context(), wandb.NewGroup{DisplayName: "other", Members: []wandb.Member{{Value: ada}}}); err != nil {
				t.Fatal(err)
			}
			if _, err := client.AssignTeamRole(t.Context(), ada, "other", team.RoleAdmin); err != nil {
				t.Fatal(err)
			}
			if otherChanges {
				// W&B's replace drops ada's admin in "other" to viewer as it sets her role in "ml".
				var once atomic.Bool
				fault := func(r *http.Request) wandbemu.Fault {
					if r.Method == http.MethodPatch && r.URL.Path == "/scim/Users/"+url.PathEscape(ada) && once.CompareAndSwap(false, true) {
						if _, err := client.AssignTeamRole(context.Background(), ada, "other", team.RoleViewer); err != nil {
							t.Errorf("change the other team's role: %v", err)
						}
					}
					return wandbemu.Fault{}
				}
				e.Fault.Store(&fault)
			}
			tm := memberTeam("ml", "ada@example.com")
			tm.Roles = map[string]string{"ada@example.com": team.RoleAdmin}
			res := e.Sync(t, []team.Team{tm})["ml"]
			if res.Outcome != apply.OutcomeCreated || e.Emu.TeamRole(ada, "ml") != "admin" {
				t.Fatalf("result %+v, role in ml %q: the team must not fail", res, e.Emu.TeamRole(ada, "ml"))
			}
			warned := strings.Contains(strings.Join(res.Warnings, "\n"), "ada@example.com in this team changed their role in other W&B teams (other: admin -> viewer)")
			if warned != otherChanges {
				t.Errorf("warnings %q; want the other team's change reported: %v", res.Warnings, otherChanges)
			}
		})
	}
}

// TestSeatLimitSkipsTheMember: W&B says user operations "may fail if organization seat limits are
// reached" without saying how; a creation failure that looks like it skips that member, reported by
// email, and never fails the team; any other refusal still does.
func TestSeatLimitSkipsTheMember(t *testing.T) {
	for _, tt := range []struct {
		name     string
		status   int
		detail   string
		seatless bool
	}{
		{"403 naming seats", http.StatusForbidden, "organization seat limit reached", true},
		{"402 without a word", http.StatusPaymentRequired, "", true},
		{"400 naming a licence limit", http.StatusBadRequest, "No licenses available: limit of 5 users", true},
		{"403 for another reason", http.StatusForbidden, "the API key is not an organisation admin", false},
		{"409 naming a limit", http.StatusConflict, "user already exists (limit)", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := applytest.NewEnv(t)
			e.Rec.Members = apply.MembersPolicy{Sync: true, CreateUsers: true, MaxRemove: 0.5}
			ada := e.Emu.AddUser("ada", "ada@example.com")
			answer := func(w http.ResponseWriter, r *http.Request) bool {
				if r.Method != http.MethodPost || r.URL.Path != "/scim/Users" {
					return false
				}
				body, _ := io.ReadAll(r.Body)
				r.Body = io.NopCloser(bytes.NewReader(body))
				if !bytes.Contains(body, []byte("erin@example.com")) {
					return false
				}
				w.Header().Set("Content-Type", "application/scim+json")
				w.WriteHeader(tt.status)
				fmt.Fprintf(w, `{"schemas":[%q],"status":"%d","detail":%q}`, wandb.SchemaError, tt.status, tt.detail)
				return true
			}
			e.Answer.Store(&answer)
			desired := []team.Team{memberTeam("ml", "ada@example.com", "erin@example.com", "finn@example.com")}
			res := e.Sync(t, desired)["ml"]
			if !tt.seatless {
				if res.Outcome != apply.OutcomeFailed || !strings.Contains(res.Detail, "erin@example.com") {
					t.Fatalf("a refusal that is no seat limit must fail the team: %+v", res)
				}
				return
			}
			finn, err := e.Rec.WandB.FindUser(t.Context(), "finn@example.com")
			if err != nil || finn == nil {
				t.Fatalf("finn was not created: %v", err)
			}
			if res.Outcome != apply.OutcomeCreated || !slices.Equal(e.Members(t, "ml"), sortedIDs(ada, finn.ID, e.ServiceAccount)) {
				t.Fatalf("result %+v, members %v: erin skipped, the others added", res, e.Members(t, "ml"))
			}
			if w := strings.Join(res.Warnings, "\n"); !strings.Contains(w, "W&B user erin@example.com was not created, the organisation's seat limit looks reached") {
				t.Errorf("warnings %q: erin must be reported", res.Warnings)
			}
			if r := e.Record(t, "ml"); slices.Contains(r.MemberEmails, "erin@example.com") {
				t.Errorf("erin recorded as synced: %v", r.MemberEmails)
			}
			// A seat is freed: the next run creates and adds erin.
			e.Answer.Store(nil)
			if res := e.Sync(t, desired)["ml"]; res.Outcome != apply.OutcomeRepaired || len(e.Members(t, "ml")) != 4 || len(res.Warnings) != 0 {
				t.Errorf("after a seat was freed: %+v, members %v", res, e.Members(t, "ml"))
			}
		})
	}
}

func sortedIDs(ids ...string) []string { slices.Sort(ids); return ids }
