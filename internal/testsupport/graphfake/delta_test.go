package graphfake

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// round follows a delta round from link to its deltaLink and returns the items and the deltaLink.
func (h *harness) round(t *testing.T, link string, minimal bool) ([]map[string]any, string) {
	t.Helper()
	var items []map[string]any
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("the round does not end")
		}
		status, body := h.get(t, link, minimal)
		if status != http.StatusOK {
			t.Fatalf("GET %s: %d %v", link, status, body)
		}
		for _, v := range body["value"].([]any) {
			items = append(items, v.(map[string]any))
		}
		next, hasNext := body["@odata.nextLink"].(string)
		delta, hasDelta := body["@odata.deltaLink"].(string)
		if hasNext == hasDelta {
			t.Fatalf("a page needs exactly one of nextLink and deltaLink: %v", body)
		}
		if hasDelta {
			return items, delta
		}
		if strings.Contains(next, "select") {
			t.Errorf("next link %q repeats the query: Graph encodes it in the token", next)
		}
		link = next
	}
}

func (h *harness) get(t *testing.T, link string, minimal bool) (int, map[string]any) {
	t.Helper()
	if !strings.HasPrefix(link, "http") {
		link = h.srv.URL + link
	}
	req, _ := http.NewRequest(http.MethodGet, link, nil)
	req.Header.Set("Authorization", "Bearer "+h.tok)
	if minimal {
		req.Header.Set("Prefer", "return=minimal")
	}
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return resp.StatusCode, m
}

// byID indexes items by id; members lists each item's members@delta as "id" or "-id" (removed).
func byID(items []map[string]any) (map[string]map[string]any, map[string][]string) {
	got, members := map[string]map[string]any{}, map[string][]string{}
	for _, it := range items {
		id := it["id"].(string)
		got[id] = it
		md, _ := it["members@delta"].([]any)
		for _, m := range md {
			mm := m.(map[string]any)
			s := mm["id"].(string)
			if _, removed := mm["@removed"]; removed {
				s = "-" + s
			}
			members[id] = append(members[id], s)
		}
	}
	return got, members
}

func TestDeltaRound(t *testing.T) {
	h := newHarness(t) // PageSize 1: every group is a page
	items, link := h.round(t, "/v1.0/groups/delta?"+url.Values{"$select": {"displayName,members"}}.Encode(), false)
	got, members := byID(items)
	if len(got) != 2 || got[g1]["displayName"] != "wandb-a" || !slices.Equal(members[g1], []string{g2, u1}) || !slices.Equal(members[g2], []string{u2}) {
		t.Fatalf("initial round: %v %v", got, members)
	}
	if _, ok := got[g1]["mail"]; ok {
		t.Errorf("mail was not selected: %v", got[g1])
	}

	// Nothing changed: an empty page and a new deltaLink.
	items, link = h.round(t, link, false)
	if len(items) != 0 {
		t.Fatalf("no change, got %v", items)
	}

	// A member leaves g1, one joins g2, g2 is renamed; a mail change is not tracked (not selected).
	h.f.AddGroup(g1, "wandb-a", "other@example.com", g2)
	h.f.AddGroup(g2, "nested-2", "", u2, u1)
	const g3 = "aaaaaaaa-0000-0000-0000-000000000003"
	h.f.AddGroup(g3, "new", "")
	items, link2 := h.round(t, link, true)
	got, members = byID(items)
	if len(got) != 3 || !slices.Equal(members[g1], []string{"-" + u1}) || !slices.Equal(members[g2], []string{u1}) {
		t.Fatalf("changes: %v %v", got, members)
	}
	if _, ok := got[g1]["displayName"]; ok {
		t.Errorf("return=minimal sent the unchanged displayName: %v", got[g1])
	}
	if got[g2]["displayName"] != "nested-2" || got[g3]["displayName"] != "new" {
		t.Errorf("renamed or new group without its displayName: %v", got)
	}
	// The same link again replays the same changes; without return=minimal every selected property comes.
	items, _ = h.round(t, link, false)
	if got, _ := byID(items); len(got) != 3 || got[g1]["displayName"] != "wandb-a" {
		t.Errorf("replay: %v", got)
	}

	h.f.DeleteGroup(g3)
	items, _ = h.round(t, link2, false)
	if len(items) != 1 || items[0]["id"] != g3 || items[0]["@removed"] == nil {
		t.Errorf("deleted group: %v", items)
	}
}

func TestDeltaLatestAndFilter(t *testing.T) {
	h := newHarness(t)
	items, link := h.round(t, "/v1.0/groups/delta?"+url.Values{"$select": {"displayName,members"}, "$deltatoken": {"latest"}}.Encode(), false)
	if len(items) != 0 {
		t.Fatalf("$deltatoken=latest returned data: %v", items)
	}
	h.f.AddGroup(g2, "nested", "", u1)
	items, _ = h.round(t, link, false)
	if _, members := byID(items); !slices.Equal(members[g2], []string{u1, "-" + u2}) {
		t.Errorf("changes after latest: %v", items)
	}

	items, _ = h.round(t, "/v1.0/groups/delta?"+url.Values{"$filter": {"id eq '" + g2 + "'"}}.Encode(), false)
	if len(items) != 1 || items[0]["id"] != g2 {
		t.Errorf("filtered round: %v", items)
	}
}

func TestDeltaRejections(t *testing.T) {
	var many []string
	for i := range 51 {
		many = append(many, "id eq 'aaaaaaaa-0000-0000-0000-0000000001"+string(rune('0'+i/10))+string(rune('0'+i%10))+"'")
	}
	for _, tc := range []struct {
		name, query string
		status      int
		code        string
	}{
		{"top", "$top=10", 400, "BadRequest"},
		{"expand", "$expand=members", 400, "BadRequest"},
		{"filter by name", "$filter=" + url.QueryEscape("displayName eq 'x'"), 400, "Request_UnsupportedQuery"},
		{"51 ids", "$filter=" + url.QueryEscape(strings.Join(many, " or ")), 400, "Request_UnsupportedQuery"},
		{"select with skiptoken", "$select=displayName&$skiptoken=abc", 400, "Request_BadRequest"},
		{"unknown skiptoken", "$skiptoken=abc", 400, "Directory_ExpiredPageToken"},
		{"unknown deltatoken", "$deltatoken=abc", 410, "syncStateNotFound"},
		{"unknown property", "$select=owners2", 400, "BadRequest"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			status, body := h.get(t, "/v1.0/groups/delta?"+tc.query, false)
			if status != tc.status || errCode(body) != tc.code {
				t.Errorf("%d %s, want %d %s", status, errCode(body), tc.status, tc.code)
			}
		})
	}
}

func TestDeltaTokenExpires(t *testing.T) {
	h := newHarness(t)
	_, link := h.round(t, "/v1.0/groups/delta?$deltatoken=latest", false)
	h.clock.advance(DeltaTokenLifetime - time.Minute)
	h.tok = h.newToken(t)
	_, link = h.round(t, link, false) // a used link gives a new one, valid seven days again
	h.clock.advance(DeltaTokenLifetime)
	h.tok = h.newToken(t)
	if status, body := h.get(t, link, false); status != http.StatusGone || errCode(body) != "syncStateNotFound" {
		t.Errorf("expired link: %d %v", status, body)
	}
	_, link = h.round(t, "/v1.0/groups/delta?$deltatoken=latest", false)
	h.f.ExpireDeltaTokens()
	if status, _ := h.get(t, link, false); status != http.StatusGone {
		t.Errorf("forgotten link: %d", status)
	}
}

func TestDeltaPermission(t *testing.T) {
	h := newHarness(t)
	h.f.SetPermissions(UserReadAll)
	if status, body := h.get(t, "/v1.0/groups/delta", false); status != http.StatusForbidden || errCode(body) != "Authorization_RequestDenied" {
		t.Errorf("without a group permission: %d %v", status, body)
	}
	h.f.SetPermissions(GroupMemberReadAll) // group-delta's least privileged permission
	if status, _ := h.get(t, "/v1.0/groups/delta", false); status != http.StatusOK {
		t.Errorf("with GroupMember.Read.All: %d", status)
	}
}
