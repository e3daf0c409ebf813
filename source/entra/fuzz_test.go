package entra

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/byob-agent/byob-agent/internal/retry"
)

// FuzzDecode feeds arbitrary bytes to every decoder of vendor answers: a page of members or groups,
// a delta page, the token response, Graph's and the token endpoint's error bodies, and Retry-After. None may panic,
// and every email that comes out is a lowercased plain address that normalizes to itself.
func FuzzDecode(f *testing.F) {
	seeds := []string{
		`{"@odata.context":"x","value":[{"@odata.type":"#microsoft.graph.user","mail":"Alice@Contoso.com","userPrincipalName":"alice@contoso.com"}],"@odata.nextLink":"https://graph.microsoft.com/v1.0/groups?$skiptoken=x"}`,
		`{"value":[{"@odata.type":"#microsoft.graph.user","mail":null,"userPrincipalName":"eve_x.com#EXT#@t.onmicrosoft.com"},{"@odata.type":"#microsoft.graph.group","mail":"g@x.y"}]}`,
		`{"value":[{"id":"aaaaaaaa-0000-0000-0000-000000000001","displayName":"wandb-ml"}]}`,
		`{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"eyJ0"}`,
		`{"token_type":"Bearer","expires_in":"3599","access_token":"eyJ0"}`,
		`{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.\r\nTrace ID: 1"}`,
		`{"error":{"code":"Request_UnsupportedQuery","message":"Operator 'endsWith' is not supported"}}`,
		`{"value":[{"@odata.type":"#microsoft.graph.user","mail":"a@b@c.d","userPrincipalName":" X@Y.Z "}]}`,
		`{"value":null}`, `[]`, `"`, `{"value":[1,2]}`,
		`{"value":[{"id":"aaaaaaaa-0000-0000-0000-000000000004","members@delta":[{"@odata.type":"#microsoft.graph.user","id":"b","@removed":{"reason":"deleted"}}]},{"id":"aaaaaaaa-0000-0000-0000-000000000009","displayName":"wandb-x"}],"@odata.deltaLink":"https://graph.microsoft.com/v1.0/groups/delta?$deltatoken=x"}`,
		`{"value":[{"id":"aaaaaaaa-0000-0000-0000-000000000001","@removed":{"reason":"changed"}}],"@odata.nextLink":"https://graph.microsoft.com/v1.0/groups/delta?$skiptoken=y"}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	s, err := New(Options{TenantID: "t", ClientID: "c", ClientSecret: "s", Filter: "x"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var members page[member]
		if json.Unmarshal(data, &members) == nil {
			for _, m := range members.Value {
				e, ok := m.email()
				if !ok {
					continue
				}
				if e != strings.ToLower(e) || strings.Count(e, "@") != 1 || strings.ContainsAny(e, " \t\r\n") {
					t.Errorf("email %q from %+v is not a plain lowercased address", e, m)
				}
				if again, ok := normalizeEmail(e); !ok || again != e {
					t.Errorf("normalizeEmail(%q) = %q, %v; want it unchanged", e, again, ok)
				}
			}
			if members.NextLink != "" {
				_ = s.checkLink("@odata.nextLink", members.NextLink)
			}
		}
		var groups page[groupHead]
		_ = json.Unmarshal(data, &groups)
		if p, err := decodeDeltaPage(data); err == nil {
			if (p.NextLink == "") == (p.DeltaLink == "") {
				t.Errorf("decodeDeltaPage accepted a page with links %q and %q", p.NextLink, p.DeltaLink)
			}
			for _, g := range p.Value {
				for _, id := range s.concerns(g) {
					if !isGUID(id) {
						t.Errorf("concerns(%+v) named %q", g, id)
					}
				}
			}
		}
		if tok, life, err := decodeToken(bytes.NewReader(data)); err == nil && (tok == "" || life <= 0 || life-refreshMargin(life) <= 0) {
			t.Errorf("decodeToken accepted token %q with lifetime %v", tok, life)
		}
		var ge graphErrorResponse
		_ = json.Unmarshal(data, &ge)
		var te tokenErrorResponse
		_ = json.Unmarshal(data, &te)
		_ = (&apiError{status: 400, code: clip(s.redact(ge.Error.Code)), message: clip(s.redact(te.Description))}).Error()
		ask, asked := retry.ParseRetryAfter(string(data), time.Now())
		if d, _ := s.policy.Delay(3, ask, asked); d < 0 {
			t.Errorf("Delay after Retry-After %q = %v", data, d)
		}
	})
}
