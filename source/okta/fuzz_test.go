package okta

import (
	"strings"
	"testing"
)

func FuzzDecodeMembers(f *testing.F) {
	for _, seed := range []string{
		`[]`, `{}`, `null`, `[{"status":"ACTIVE","profile":{"login":"a@b.co","email":"A@B.CO"}}]`,
		`[{"status":"DEPROVISIONED","profile":{"email":"d@e.fg"}},{"profile":{"email":null,"login":"Bob <b@c.de>"}}]`,
		`[{"profile":{"email":"x","login":"y@z.ab"}},{"profile":{"email":7}}]`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		emails, err := decodeMembers(body)
		if err != nil {
			return
		}
		for _, e := range emails {
			if e == "" || e != strings.ToLower(e) || !strings.Contains(e, "@") {
				t.Errorf("member %q is not a lowercased email", e)
			}
		}
	})
}

func FuzzDecodeGroups(f *testing.F) {
	for _, seed := range []string{
		`[]`, `[{"id":"00g1","profile":{"name":"wandb-a"}}]`, `[{"id":"../x","profile":{}}]`, `[{"id":""}]`, `[1]`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		groups, err := decodeGroups(body)
		if err != nil {
			return
		}
		for _, g := range groups {
			if !validID(g.ID) {
				t.Errorf("accepted group id %q", g.ID)
			}
		}
	})
}

func FuzzNextLink(f *testing.F) {
	for _, seed := range []string{
		`<https://o/a?after=1>; rel="next"`, `<https://o/a>; rel="self", <https://o/b>; rel=next`,
		`<x>; title="a, b; rel=next"`, `<`, `<>;rel`, `<a>; rel="\"next`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, value string) {
		target, ok := nextLink([]string{value})
		if ok && (strings.Contains(target, ">") || !strings.Contains(value, "<"+target+">")) {
			t.Errorf("nextLink(%q) = %q", value, target)
		}
	})
}
