package s3bucket

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/byob-agent/byob-agent/team"
)

// CoreWeave AI Object Storage speaks the S3 API with virtual-hosted addressing and TLS 1.3. Its bucket
// policies name principals as {"CW": arn} and W&B's statement carries a wandb:OrgID condition.

const (
	coreWeaveEndpoint = "https://cwobject.com"
	// lotaHost serves CoreWeave's in-cluster LOTA cache; W&B does not support it.
	lotaHost   = "cwlota.com"
	orgWideSid = "OrgWideAccess"
)

var cwOrgIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]*$`)

// checkCoreWeaveOptions checks the policy settings and fills in the default endpoint.
func checkCoreWeaveOptions(o *Options) error {
	switch {
	case o.OrgID == "":
		return fmt.Errorf("provider %q needs the W&B organization id (or customer namespace) for the policy condition wandb:OrgID", o.Provider)
	case strings.ContainsAny(o.OrgID, "*?"):
		// The condition is StringLike: a wildcard would admit other W&B organisations.
		return fmt.Errorf("W&B organization id %q must not contain '*' or '?'", o.OrgID)
	case o.OrgWideAccess != "" && !cwOrgIDRE.MatchString(o.OrgWideAccess):
		return fmt.Errorf("org-wide access %q is not a CoreWeave organization id (letters, digits and '-')", o.OrgWideAccess)
	}
	if o.Endpoint == "" {
		o.Endpoint = coreWeaveEndpoint
	}
	return nil
}

// checkEndpoint rejects an endpoint URL that is not http(s)://host[:port] ("" means the provider's
// default) and, for coreweave, a LOTA endpoint.
func checkEndpoint(provider, endpoint string) error {
	if endpoint == "" {
		return nil
	}
	u, _, err := parseEndpoint(endpoint)
	if err != nil {
		return err
	}
	if h := u.Hostname(); provider == team.ProviderCoreWeave && (h == lotaHost || strings.HasSuffix(h, "."+lotaHost)) {
		return fmt.Errorf("endpoint %s is a CoreWeave LOTA endpoint, which W&B does not support: use %s", endpoint, coreWeaveEndpoint)
	}
	return nil
}

// parseEndpoint parses an endpoint URL of the form http(s)://host[:port]. Errors never echo
// credentials someone put into the URL.
func parseEndpoint(endpoint string) (u *url.URL, https bool, err error) {
	u, err = url.Parse(endpoint)
	switch {
	case err != nil:
		return nil, false, fmt.Errorf("endpoint does not parse as a URL: want http(s)://host[:port]")
	case u.User != nil:
		return nil, false, fmt.Errorf("endpoint %s carries credentials: give them as the profile's credentials instead", u.Redacted())
	case u.Scheme != "http" && u.Scheme != "https", u.Host == "", u.Path != "" && u.Path != "/", u.RawQuery != "", u.Fragment != "":
		return nil, false, fmt.Errorf("endpoint %q: want http(s)://host[:port]", endpoint)
	}
	return u, u.Scheme == "https", nil
}

// requireTLS13 makes tr refuse less than TLS 1.3: W&B requires it of CoreWeave, so the agent does too. It
// applies to https endpoints only; plain http (tests) has no TLS.
func requireTLS13(tr *http.Transport) {
	if tr.TLSClientConfig == nil {
		tr.TLSClientConfig = &tls.Config{}
	}
	tr.TLSClientConfig.MinVersion = tls.VersionTLS13
}

// coreWeaveGrants turns W&B's bucket statement into CoreWeave's: the principal is a CW one, admitted only
// for the customer's W&B organisation; with orgWide set, a second statement gives the customer's own
// CoreWeave organisation s3:* on the bucket.
func (f *Factory) coreWeaveGrants(wandb statement, what, bucket string) []policyGrant {
	wandb["Principal"] = map[string]any{"CW": f.principal}
	wandb["Condition"] = map[string]any{"StringLike": map[string]any{"wandb:OrgID": []any{f.orgID}}}
	grants := []policyGrant{{check: "policy", what: what + " if wandb:OrgID is " + f.orgID, stmt: wandb}}
	if f.orgWide == "" {
		return grants
	}
	orgPrincipal := fmt.Sprintf("arn:aws:iam::%s:*", f.orgWide)
	return append(grants, policyGrant{
		check: "org-wide-access",
		what:  orgPrincipal + " s3:* on the bucket and its objects",
		stmt: statement{
			"Sid":       orgWideSid,
			"Effect":    "Allow",
			"Principal": map[string]any{"CW": orgPrincipal},
			"Action":    "s3:*",
			"Resource":  toAnySlice(bucketResources(f.partition, bucket)),
		},
	})
}
