package server

import (
	"net/http"
	"path/filepath"
	"testing"

	"github.com/byob-agent/byob-agent/state"
)

// AdmitGroup refuses a displayName before anything is stored, on create and on rename, with the
// status and detail it gives; other writes (members, deletes) never ask it.
func TestAdmitGroup(t *testing.T) {
	db, err := state.Open(filepath.Join(t.TempDir(), "state.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	var asked []string
	refuse := map[string]*Refusal{
		"wandb-taken": {Status: http.StatusConflict, Detail: `the team name "taken" is taken: the configuration's teams list gives it; rename the group`},
		"wandb-new":   {Status: http.StatusForbidden, Detail: "no more new teams this hour"},
	}
	e := &env{t: t, db: db, rec: &recorder{}}
	e.h, err = New(Options{BaseURL: testBase, Tokens: []string{testToken}, Store: db,
		AdmitGroup: func(name string) *Refusal { asked = append(asked, name); return refuse[name] }})
	if err != nil {
		t.Fatal(err)
	}
	group := func(name string) map[string]any {
		return map[string]any{"schemas": []string{groupURN}, "displayName": name}
	}
	rename := func(name string) map[string]any {
		return map[string]any{"schemas": []string{patchURN}, "Operations": []any{map[string]any{"op": "replace", "path": "displayName", "value": name}}}
	}
	id := e.mustCode(e.do("POST", "/Groups", group("wandb-ok")), http.StatusCreated).Body["id"].(string)
	tests := []struct {
		name, method, target string
		body                 any
		status               int
		scimType, detail     string
	}{
		{"create claimed", "POST", "/Groups", group("wandb-taken"), 409, "uniqueness", refuse["wandb-taken"].Detail},
		{"create past quota", "POST", "/Groups", group("wandb-new"), 403, "", refuse["wandb-new"].Detail},
		{"rename to a claimed name", "PATCH", "/Groups/" + id, rename("wandb-taken"), 409, "uniqueness", refuse["wandb-taken"].Detail},
		{"replace with a claimed name", "PUT", "/Groups/" + id, group("wandb-taken"), 409, "uniqueness", refuse["wandb-taken"].Detail},
		{"same name again: not asked", "PUT", "/Groups/" + id, group("wandb-ok"), 200, "", ""},
		{"rename admitted", "PATCH", "/Groups/" + id, rename("wandb-fine"), 200, "", ""},
		{"delete: not asked", "DELETE", "/Groups/" + id, nil, 204, "", ""},
	}
	for _, tt := range tests {
		asked = nil
		r := e.do(tt.method, tt.target, tt.body)
		if r.Code != tt.status || tt.status >= 400 && (r.Body["scimType"] != nil && r.Body["scimType"] != tt.scimType || r.Body["detail"] != tt.detail) {
			t.Errorf("%s: %d %s", tt.name, r.Code, r.Raw)
		}
		if tt.scimType != "" && r.Body["scimType"] != tt.scimType {
			t.Errorf("%s: scimType %v, want %s", tt.name, r.Body["scimType"], tt.scimType)
		}
		wantAsked := 1
		if tt.name == "same name again: not asked" || tt.name == "delete: not asked" {
			wantAsked = 0
		}
		if len(asked) != wantAsked {
			t.Errorf("%s: AdmitGroup asked %q", tt.name, asked)
		}
	}
	groups, err := db.SCIMGroups(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 1 || groups[0].DisplayName != "wandb-fine" {
		t.Errorf("stored groups %+v, want only the admitted one", groups)
	}
}
