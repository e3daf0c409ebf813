// Package config loads byob-agent's YAML configuration: it parses the file (and the teams file it may
// name), expands ${ENV} references, reads secret files, applies defaults and checks everything,
// reporting every problem at once with its file, line, column and field path.
//
// The package never touches the process environment or the file system itself: the caller passes
// both in LoadOptions, so tests and `byob-agent config validate` see exactly what the daemon sees.
package config

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/template"
	"time"

	"github.com/byob-agent/byob-agent/team"
)

// W&B deployments (wandb.deployment). They decide the default W&B principal of AWS profiles and
// which providers W&B accepts for team-level storage.
const (
	DeploymentMultiTenant = "multi-tenant"
	DeploymentDedicated   = "dedicated"
	DeploymentSelfManaged = "self-managed"
)

// SCIM authentication modes (wandb.auth.mode); see docs/wandb.md.
const (
	AuthBearer              = "bearer"                // Authorization: Bearer <api key>
	AuthBasicUser           = "basic-user"            // Basic <username>:<api key>, an admin user
	AuthBasicServiceAccount = "basic-service-account" // Basic :<api key>, an org-scoped service account
)

// Profile topologies (profiles.<name>.topology).
const (
	TopologyPerTeam = "per-team" // a bucket per team
	TopologyShared  = "shared"   // one bucket for all teams of the profile, a path per team
)

// W&B's principals, granted access to every bucket (and, on AWS, KMS key) by provider and deployment
// (docs/wandb.md). Self-managed W&B runs as the customer's own identity, except on CoreWeave.
const (
	principalMultiTenant          = "arn:aws:iam::725579432336:role/WandbIntegration"
	principalDedicated            = "arn:aws:iam::830241207209:root"
	coreweavePrincipalMultiTenant = "arn:aws:iam::wandb:static/wandb-integration-public"
	coreweavePrincipal            = "arn:aws:iam::wandb:static/wandb-integration"
	gcsServiceAccountMultiTenant  = "wandb-integration@wandb-production.iam.gserviceaccount.com"
	gcsServiceAccountDedicated    = "deploy@wandb-production.iam.gserviceaccount.com"
)

// Defaults for values the file may leave out.
const (
	DefaultTimeout            = 30 * time.Second
	DefaultStatePath          = "byob-agent.db"
	DefaultConcurrency        = 8
	DefaultDriftCheckInterval = 24 * time.Hour
	MaxConcurrency            = 256
	DefaultCoreWeaveEndpoint  = "https://cwobject.com"
	DefaultSoftDeleteDays     = 7 // gcs and azure; GCS's own default
)

// Config is a loaded, fully resolved and valid configuration.
type Config struct {
	File  string // the file it was loaded from
	Wandb Wandb
	State State
	Sync  Sync
	// DefaultProfile is the profile of teams that name none: the configured defaultProfile, or the only
	// profile when there is exactly one; empty when teams must name their profile.
	DefaultProfile string

	// The daemon's settings (`byob-agent run`); the one-shot commands ignore them.
	Server   Server
	Schedule string // cron schedule of the full reconcile (robfig/cron standard syntax)
	Workers  int    // teams reconciled at once by the daemon
	SCIM     *SCIM  // nil: no inbound SCIM endpoint
	Webhooks Webhooks
	Sources  Sources // identity providers whose groups become teams
	Members  Members // whether and how team members follow the groups
	// Warnings are what is allowed but unverified (team names outside W&B's documented rule); the
	// commands print them.
	Warnings []string

	profiles map[string]Profile
	teams    []team.Team // sorted by name
}

// Wandb is how the agent reaches W&B's SCIM API.
type Wandb struct {
	SCIMURL    string // base URL without a trailing slash, e.g. https://acme.wandb.io/scim
	Deployment string // Deployment* constant
	Auth       Auth
	Timeout    time.Duration // per request
	// CAFile is a PEM bundle trusted, with the system roots, for W&B's host (a self-managed instance
	// with a private CA); "" for the system roots alone.
	CAFile string
	// AllowUndocumentedTeamNames accepts team names outside W&B's documented rule (lowercase letters,
	// numbers and hyphens), such as names with '_', which W&B may or may not take.
	AllowUndocumentedTeamNames bool
}

// Auth is the SCIM API credential.
type Auth struct {
	Mode     string // Auth* constant
	Username string // AuthBasicUser only
	APIKey   Secret
}

// State is where the agent keeps its durable record.
type State struct {
	Path string // resolved against the config file's directory; bbolt, unused with Postgres
	// Postgres, when set, keeps the state in PostgreSQL instead (several replicas, one leader).
	Postgres *PostgresState
}

// Sync tunes the reconciler.
type Sync struct {
	Concurrency        int           // teams worked on at once
	DriftCheckInterval time.Duration // 0 disables the periodic drift check
}

// Profile is one resolved storage profile: where and how the buckets of its teams are made. Fields
// that the provider does not use are zero.
type Profile struct {
	Name     string
	Provider string // one of team.Providers
	// Topology is TopologyPerTeam (every team its own bucket) or TopologyShared (every team of the
	// profile the same bucket, each under its own Path).
	Topology string
	// Region is the bucket region: required for aws and s3-compatible; for gcs the bucket location
	// (us-east1, nam4, US), required; optional for coreweave and azure.
	Region string
	// Endpoint is the storage API URL. Empty means the provider's default (aws, gcs); coreweave and
	// azure always have one: https://cwobject.com and https://<account>.blob.core.windows.net/ unless set.
	Endpoint  string
	PathStyle bool // path-style S3 addressing (aws, s3-compatible)
	// Credentials for the S3 API (aws, s3-compatible, coreweave); nil means the AWS SDK's default
	// credential chain (aws only).
	Credentials *Credentials
	// PrincipalARN is the W&B principal the bucket policy (and, on aws, the key policy) grants access:
	// an IAM ARN (aws) or a CoreWeave principal such as arn:aws:iam::wandb:static/wandb-integration.
	PrincipalARN  string
	KMS           KMS    // aws (required) and s3-compatible (optional)
	AWSExternalID string // aws only
	// AdoptExisting lets the agent take over an existing bucket of ours that carries no ownership tag.
	AdoptExisting bool
	// RequireRegistered holds a team whose bucket is ready until the operator has registered the bucket
	// with W&B (dedicated, self-managed). Never set on multi-tenant.
	RequireRegistered bool
	// Timeout bounds each attempt of a storage API request (the SDKs retry a timed-out attempt), so a
	// server that accepts a request and never answers cannot hold a sync.
	Timeout time.Duration
	// CAFile is a PEM bundle trusted, with the system roots, for the profile's endpoints (a private CA,
	// or the CA of a TLS-inspecting proxy); "" for the system roots alone.
	CAFile string
	// SoftDeleteDays is how long deleted data is kept: the GCS soft delete policy (7..90) or Azure blob
	// soft delete (1..365); 0 for other providers.
	SoftDeleteDays int

	// gcs
	Project string // Google Cloud project that holds the buckets
	// ServiceAccount is the W&B service account email granted roles/storage.admin on every bucket.
	ServiceAccount string
	// GCSCredentialsJSON is a service account key (the JSON file Google issues; it has client_email and
	// private_key). Unset means Application Default Credentials.
	GCSCredentialsJSON Secret

	// azure: the agent authenticates with exactly one of AccountKey, ConnectionString and UseIdentity.
	Account          string // storage account holding the containers (Storage.Bucket is the container)
	AccountKey       Secret
	ConnectionString Secret
	UseIdentity      bool   // azidentity's default chain (managed identity, workload identity, Azure CLI)
	TenantID         string // W&B's storageBucket.azureTenantId
	ClientID         string // W&B's storageBucket.azureClientId: the managed identity W&B uses

	// coreweave
	OrgID string // W&B organization id or customer namespace: the wandb:OrgID policy condition
	// OrgWideAccess, when set, is the customer's CoreWeave org id: a second policy statement grants
	// s3:* to {"CW": "arn:aws:iam::<OrgWideAccess>:*"}.
	OrgWideAccess string

	bucketText, pathText string
	bucket, path         *template.Template // path is nil when the profile has no path template
	sharedBucket         string             // TopologyShared: the bucket of every team
}

// Credentials are static storage API credentials.
type Credentials struct {
	AccessKeyID     string
	SecretAccessKey Secret
	SessionToken    Secret // optional; Reveal() == "" when unset
}

// KMS is the SSE-KMS setting of a profile. The zero value means no SSE-KMS (s3-compatible only).
type KMS struct {
	KeyARN   string // one existing key for every bucket of the profile
	Create   bool   // the agent creates one key per team
	Endpoint string // KMS API endpoint override; empty means the SDK default
	// AccountID is the AWS account whose root the key policy of a created key names; empty: ask STS.
	AccountID string
}

// Profile returns the resolved profile of that name.
func (c *Config) Profile(name string) (Profile, bool) {
	p, ok := c.profiles[name]
	return p, ok
}

// ProfileNames returns the names of all profiles, sorted.
func (c *Config) ProfileNames() []string {
	return slices.Sorted(maps.Keys(c.profiles))
}

// DesiredTeams returns the teams the YAML file asks for, sorted by name, with fully resolved storage.
func (c *Config) DesiredTeams() []team.Team {
	return slices.Clone(c.teams)
}

// Storage renders the profile's bucket and path templates for one team and checks the result against
// the provider's naming rules (and, for a shared profile, that the team gets the shared bucket and a
// path of its own), so a team from any source gets exactly the storage a YAML team would.
func (p Profile) Storage(teamName string) (team.Storage, error) {
	if p.bucket == nil {
		return team.Storage{}, fmt.Errorf("profile %q has no bucket template", p.Name)
	}
	data := templateData(teamName, p.Name)
	bucket, err := render(p.bucket, data)
	if err != nil {
		return team.Storage{}, fmt.Errorf("profile %q bucket template %q: %w", p.Name, p.bucketText, err)
	}
	if err := team.ValidateBucketName(p.Provider, bucket); err != nil {
		return team.Storage{}, fmt.Errorf("profile %q bucket template %q gives %q: %w", p.Name, p.bucketText, bucket, err)
	}
	shared := p.Topology == TopologyShared
	if shared && bucket != p.sharedBucket {
		return team.Storage{}, fmt.Errorf("profile %q is shared, so every team gets bucket %q, but its bucket template %q gives %q for this team: the bucket must not depend on the team",
			p.Name, p.sharedBucket, p.bucketText, bucket)
	}
	var path string
	if p.path != nil {
		if path, err = render(p.path, data); err != nil {
			return team.Storage{}, fmt.Errorf("profile %q path template %q: %w", p.Name, p.pathText, err)
		}
		if err := team.ValidatePath(path); err != nil {
			return team.Storage{}, fmt.Errorf("profile %q path template %q gives %q: %w", p.Name, p.pathText, path, err)
		}
	}
	if shared && path == "" {
		return team.Storage{}, fmt.Errorf("profile %q is shared, so every team needs a path of its own, but its path template %q gives an empty path for this team", p.Name, p.pathText)
	}
	return team.Storage{
		Provider:      p.Provider,
		Bucket:        bucket,
		Path:          path,
		Region:        p.Region,
		Endpoint:      p.Endpoint,
		Account:       p.Account,
		Shared:        shared,
		KMSKeyARN:     p.KMS.KeyARN,
		CreateKMSKey:  p.KMS.Create,
		AWSExternalID: p.AWSExternalID,
		AzureTenantID: p.TenantID,
		AzureClientID: p.ClientID,
	}, nil
}

// templateData is what bucket and path templates see.
func templateData(teamName, profile string) map[string]string {
	return map[string]string{"Team": teamName, "Profile": profile}
}

// maxRendered bounds a template's output: no bucket name or path is anywhere near it, and the bound
// stops a runaway template (e.g. a large range) early.
const maxRendered = 1024

var errTooLong = errors.New("output is longer than 1024 bytes")

func render(t *template.Template, data map[string]string) (string, error) {
	w := &limitWriter{max: maxRendered}
	if err := t.Execute(w, data); err != nil {
		return "", err
	}
	return w.String(), nil
}

type limitWriter struct {
	strings.Builder
	max int
}

func (w *limitWriter) Write(p []byte) (int, error) {
	if w.Len()+len(p) > w.max {
		return 0, errTooLong
	}
	return w.Builder.Write(p)
}
