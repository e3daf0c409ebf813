package okta

import (
	"strings"
	"testing"

	"github.com/byob-agent/byob-agent/sync/queuekey"
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

func FuzzDecodeLogPage(f *testing.F) {
	for _, seed := range []string{
		`[]`, `{}`, `null`, `[{"uuid":"u1","eventType":"group.user_membership.add","target":[{"id":"00u1","type":"User"},{"id":"00g1","type":"UserGroup"}]}]`,
		`[{"eventType":"user.lifecycle.deactivate","target":null},{"eventType":"group.profile.update","target":[{"id":"00g 1","type":"UserGroup"}]}]`,
		`[{"eventType":7}]`, `[{"eventType":"group.lifecycle.delete","target":[{"id":"` + strings.Repeat("a", 70) + `","type":"UserGroup"}]}]`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		page, err := decodeLogPage(body)
		if err != nil {
			return
		}
		for _, e := range page {
			key, ok := EventKey(e)
			if !ok {
				continue
			}
			if src, id, isGroup := key.Group(); key != queuekey.All && (!isGroup || src != SourceKey || !validID(id)) {
				t.Errorf("event %+v: key %q is neither all nor an Okta group", e, key)
			}
		}
	})
}
