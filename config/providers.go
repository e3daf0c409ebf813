package config

import (
	"net/url"
	"regexp"
	"strings"

	"github.com/byob-agent/byob-agent/team"
)

// s3Profile reads the settings of aws and s3-compatible profiles.
func (f *file) s3Profile(m mapping, p *Profile, deployment string) {
	aws, s3c := p.Provider == team.ProviderAWS, p.Provider == team.ProviderS3Compatible
	p.Region, _ = f.str(m, "region", mustSet)
	p.Endpoint, _ = f.endpoint(m, when(s3c, "is required for provider s3-compatible"))
	// S3-compatible servers are commonly reached by IP or a name without wildcard DNS.
	p.PathStyle = s3c
	if ps, n := f.boolean(m, "pathStyle"); n != nil {
		p.PathStyle = ps
	}
	p.Credentials = f.s3Credentials(m, when(s3c, "is required for provider s3-compatible"), true)
	if aws {
		p.PrincipalARN = f.principal(m, awsPrincipal, deployment)
		p.AWSExternalID, _ = f.str(m, "awsExternalId", "")
	}
	p.KMS = f.kms(m, p.Provider, p.Region)
}

var coreweaveOrgRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]*$`)

// coreweaveProfile reads the settings of a coreweave profile.
func (f *file) coreweaveProfile(m mapping, p *Profile, deployment string) {
	p.Region, _ = f.str(m, "region", "")
	p.Endpoint = DefaultCoreWeaveEndpoint
	if e, n := f.endpoint(m, ""); n != nil {
		u, _ := url.Parse(e) // checked by endpoint
		switch {
		case u.Hostname() == "cwlota.com" || strings.HasSuffix(u.Hostname(), ".cwlota.com"):
			f.problem(n, m.at("endpoint"), "W&B does not support CoreWeave LOTA endpoints; use %s", DefaultCoreWeaveEndpoint)
		case u.Scheme != "https":
			f.problem(n, m.at("endpoint"), "must be an https:// URL: CoreWeave AI Object Storage is reached over TLS")
		}
		p.Endpoint = e
	}
	p.Credentials = f.s3Credentials(m, "is required for provider coreweave: an access key of the CoreWeave organization", false)
	p.OrgID, _ = f.str(m, "orgId", "is required for provider coreweave: your W&B organization id or customer namespace (the wandb:OrgID condition of the bucket policy)")
	p.PrincipalARN = f.principal(m, coreweavePrincipalRule, deployment)
	if id, n := f.str(m, "orgWideAccess", ""); n != nil && id != "" {
		if !coreweaveOrgRE.MatchString(id) {
			f.problem(n, m.at("orgWideAccess"), "%q is not a CoreWeave organization id (letters, digits and '-')", id)
		}
		p.OrgWideAccess = id
	}
}

var (
	// awsRegionRE matches AWS region names (us-east-1), which GCS locations never look like (us-east1).
	awsRegionRE    = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`)
	gcpProjectIDRE = regexp.MustCompile(`^([a-z][a-z0-9.-]*[a-z0-9]:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$`)
)

// gcsProfile reads the settings of a gcs profile.
func (f *file) gcsProfile(m mapping, p *Profile, deployment string) {
	if r, n := f.str(m, "region", "is required for provider gcs: the bucket location, such as us-east1, nam4 or US"); n != nil {
		if awsRegionRE.MatchString(r) {
			f.problem(n, m.at("region"), "%q is an AWS region name; GCS locations look like us-east1, nam4 or US", r)
		}
		p.Region = r
	}
	if id, n := f.str(m, "project", "is required for provider gcs: the id of the Google Cloud project that holds the buckets"); n != nil {
		if !gcpProjectIDRE.MatchString(id) {
			f.problem(n, m.at("project"), "%q is not a Google Cloud project id (6 to 30 lowercase letters, digits and '-', starting with a letter)", id)
		}
		p.Project = id
	}
	p.Endpoint, _ = f.endpoint(m, "")
	p.ServiceAccount = f.principal(m, gcsPrincipalRule, deployment)
	p.GCSCredentialsJSON = f.gcsCredentials(m)
	p.SoftDeleteDays = f.softDeleteDays(m, 7, 90,
		`GCS keeps soft-deleted objects 7 to 90 days, and 0 turns soft delete off, which W&B refuses: "Bucket does not have soft deletion enabled"`)
}

var (
	azureAccountRE = regexp.MustCompile(`^[a-z0-9]{3,24}$`)
	guidRE         = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
)

// azureProfile reads the settings of an azure profile.
func (f *file) azureProfile(m mapping, p *Profile) {
	p.Region, _ = f.str(m, "region", "")
	if a, n := f.str(m, "account", "is required for provider azure: the storage account that holds the containers"); n != nil {
		if !azureAccountRE.MatchString(a) {
			f.problem(n, m.at("account"), "%q is not a storage account name (3 to 24 lowercase letters and digits)", a)
		}
		p.Account = a
	}
	if e, n := f.endpoint(m, ""); n != nil {
		p.Endpoint = e
	} else if p.Account != "" {
		p.Endpoint = "https://" + p.Account + ".blob.core.windows.net/"
	}
	p.TenantID = f.guid(m, "tenantId", "is required for provider azure: the Entra ID tenant W&B's storageBucket.azureTenantId names")
	p.ClientID = f.guid(m, "clientId", "is required for provider azure: the client id of the managed identity W&B uses (storageBucket.azureClientId)")
	f.azureCredentials(m, p)
	p.SoftDeleteDays = f.softDeleteDays(m, 1, 365,
		"Azure keeps soft-deleted blobs 1 to 365 days, and W&B's artifact garbage collection needs blob soft delete")
}

func (f *file) guid(m mapping, key, ifMissing string) string {
	v, n := f.str(m, key, ifMissing)
	if n != nil && !guidRE.MatchString(v) {
		f.problem(n, m.at(key), "%q is not a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)", v)
	}
	return v
}

// softDeleteDays returns softDeleteDays (default DefaultSoftDeleteDays), checked against lo..hi; why
// explains the bounds.
func (f *file) softDeleteDays(m mapping, lo, hi int, why string) int {
	d, n := f.integer(m, "softDeleteDays")
	if n == nil {
		return DefaultSoftDeleteDays
	}
	if d < lo || d > hi {
		f.problem(n, m.at("softDeleteDays"), "must be between %d and %d, got %d: %s", lo, hi, d, why)
	}
	return d
}

// principalRule is how a provider's `principal` is read: presets by deployment, or an explicit value.
type principalRule struct {
	presets     map[string]string // deployment -> W&B's principal
	re          *regexp.Regexp    // an explicit value
	what        string            // what an explicit value is, for messages
	selfManaged string            // what to set when self-managed W&B has no preset
}

var (
	awsPrincipal = principalRule{
		presets:     map[string]string{DeploymentMultiTenant: principalMultiTenant, DeploymentDedicated: principalDedicated},
		re:          regexp.MustCompile(`^arn:aws(-[a-z]+)*:iam::[0-9]{12}:(root|role/\S+|user/\S+)$`),
		what:        "an IAM principal ARN (arn:aws:iam::<account>:role/<name>)",
		selfManaged: "the ARN of the IAM role or user your W&B server runs as",
	}
	coreweavePrincipalRule = principalRule{
		presets: map[string]string{DeploymentMultiTenant: coreweavePrincipalMultiTenant, DeploymentDedicated: coreweavePrincipal,
			DeploymentSelfManaged: coreweavePrincipal},
		re:   regexp.MustCompile(`^arn:aws:iam::[A-Za-z0-9-]+:\S+$`),
		what: "a CoreWeave principal ARN (" + coreweavePrincipal + ")",
	}
	gcsPrincipalRule = principalRule{
		presets:     map[string]string{DeploymentMultiTenant: gcsServiceAccountMultiTenant, DeploymentDedicated: gcsServiceAccountDedicated},
		re:          regexp.MustCompile(`^[^@\s]+@[^@\s]+\.[^@\s]+$`),
		what:        "a service account email (name@project.iam.gserviceaccount.com)",
		selfManaged: "the email of the service account your W&B server runs as",
	}
)

// principal returns the W&B principal a profile grants access: the preset of wandb.deployment unless
// `principal` names a deployment or gives the principal itself.
func (f *file) principal(m mapping, r principalRule, deployment string) string {
	v, n := f.str(m, "principal", "")
	if n == nil && m.has("principal") { // bad, already reported
		return ""
	}
	preset := v
	if preset == "" {
		preset = deployment
	}
	if w, ok := r.presets[preset]; ok {
		return w
	}
	switch {
	case v == "" && deployment == DeploymentSelfManaged:
		f.missing(m, "principal", "is required when wandb.deployment is self-managed: "+r.selfManaged)
	case v == "": // no valid deployment, reported already
	case !r.re.MatchString(v):
		var names []string
		for _, d := range []string{DeploymentMultiTenant, DeploymentDedicated, DeploymentSelfManaged} {
			if _, ok := r.presets[d]; ok {
				names = append(names, d)
			}
		}
		f.problem(n, m.at("principal"), "%q is not %s or %s", v, strings.Join(names, ", "), r.what)
	default:
		return v
	}
	return ""
}

var (
	kmsKeyARNRE = regexp.MustCompile(`^arn:aws(-[a-z]+)*:kms:([a-z0-9-]+):[0-9]{12}:key/[A-Za-z0-9-]+$`)
	accountIDRE = regexp.MustCompile(`^[0-9]{12}$`)
)

func (f *file) kms(pm mapping, provider, region string) KMS {
	aws := provider == team.ProviderAWS
	m, ok := f.section(pm, "kms", when(aws, "is required for provider aws: W&B requires SSE-KMS with a customer key (set keyArn, or create: true)"),
		"keyArn", "create", "endpoint", "accountId")
	if !ok {
		return KMS{}
	}
	var k KMS
	arn, an := f.str(m, "keyArn", "")
	create, cn := f.boolean(m, "create")
	k.Create = create
	switch {
	case an != nil && arn != "" && create:
		f.problem(m.keys["create"], m.at("create"), "set either keyArn or create: true, not both")
	case !create && !m.has("keyArn") && (cn != nil || !m.has("create")):
		f.problem(m.pos, m.field, "set keyArn, or create: true")
	case !k.Create && an != nil && arn == "":
		f.problem(an, m.at("keyArn"), "must not be empty")
	case aws && arn != "":
		// Only AWS key ids are ARNs; S3-compatible servers name their keys as their KMS does.
		match := kmsKeyARNRE.FindStringSubmatch(arn)
		switch {
		case match == nil:
			f.problem(an, m.at("keyArn"), "%q is not a KMS key ARN (arn:aws:kms:<region>:<account>:key/<key id>)", arn)
		case region != "" && match[2] != region:
			f.problem(an, m.at("keyArn"), "the key is in region %s but the profile's region is %s; S3 needs the key in the bucket's region", match[2], region)
		}
	}
	k.KeyARN = arn
	if id, in := f.str(m, "accountId", ""); in != nil && id != "" {
		if !accountIDRE.MatchString(id) {
			f.problem(in, m.at("accountId"), "%q is not an AWS account id (12 digits)", id)
		}
		k.AccountID = id
	}
	k.Endpoint, _ = f.endpoint(m, "")
	return k
}
