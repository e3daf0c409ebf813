// Package wandb is the client of W&B's SCIM API (teams are SCIM Groups, users SCIM Users) and the one
// home of W&B's wire format: the storageBucket value and W&B's provider names.
package wandb

import (
	"encoding/json"

	"github.com/byob-agent/byob-agent/team"
)

// StorageBucket is W&B's team-level bring-your-own-bucket value, sent when a team is created.
type StorageBucket struct {
	Name          string `json:"name"`
	Provider      string `json:"provider"` // AWS | GCP | AZURE | COREWEAVE | MINIO, exact case
	Path          string `json:"path,omitempty"`
	KMSKeyID      string `json:"kmsKeyId,omitempty"`
	AWSExternalID string `json:"awsExternalId,omitempty"`
	AzureTenantID string `json:"azureTenantId,omitempty"`
	AzureClientID string `json:"azureClientId,omitempty"`
}

// Member is one member of a group.
type Member struct {
	Value   string `json:"value"`
	Display string `json:"display,omitempty"`
}

// Group is a W&B team as SCIM shows it.
type Group struct {
	ID          string   `json:"id"`
	DisplayName string   `json:"displayName"`
	Members     []Member `json:"members"`
	// ETag is the team's version as W&B last showed it: the ETag header of a single-team answer, else
	// meta.version. "" when W&B sent neither. W&B: "ETags are returned in the ETag response header and
	// the meta.version field" (https://docs.wandb.ai/platform/hosting/iam/scim#etag-support; its example
	// is weak, W/"xyz123"). It is opaque and only ever sent back verbatim, in If-Match.
	ETag string `json:"-"`
}

// UnmarshalJSON decodes a group and takes ETag from meta.version. A meta that is not an object is
// ignored: it is not needed to use the team.
func (g *Group) UnmarshalJSON(data []byte) error {
	type plain Group // no UnmarshalJSON: no recursion
	var w struct {
		plain
		Meta json.RawMessage `json:"meta"`
	}
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	*g = Group(w.plain)
	var meta struct {
		Version string `json:"version"`
	}
	if json.Unmarshal(w.Meta, &meta) == nil {
		g.ETag = meta.Version
	}
	return nil
}

// NewGroup is what creating a team sends.
type NewGroup struct {
	DisplayName   string
	Members       []Member
	StorageBucket *StorageBucket
}

// Schema URNs of the SCIM messages and resources W&B uses (RFC 7643, RFC 7644).
const (
	SchemaGroup        = "urn:ietf:params:scim:schemas:core:2.0:Group"
	SchemaUser         = "urn:ietf:params:scim:schemas:core:2.0:User"
	SchemaListResponse = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
	SchemaError        = "urn:ietf:params:scim:api:messages:2.0:Error"
	SchemaPatchOp      = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
	// SchemaTeamsUser is W&B's teams extension of the User resource, with which users are created on
	// Multi-tenant Cloud ("Create User Request (Multi-tenant)",
	// https://docs.wandb.ai/platform/hosting/iam/scim#create-user).
	SchemaTeamsUser = "urn:ietf:params:scim:schemas:extension:teams:2.0:User"
)

// Deployments of W&B, as Options.Deployment and the config's wandb.deployment name them.
const (
	DeploymentMultiTenant = "multi-tenant"
	DeploymentDedicated   = "dedicated"
	DeploymentSelfManaged = "self-managed"
)

// Provider is the value W&B's storageBucket.provider takes for an agent provider (upper case, exact);
// "" for one W&B does not know.
func Provider(agentProvider string) string {
	switch agentProvider {
	case team.ProviderAWS:
		return "AWS"
	case team.ProviderS3Compatible:
		return "MINIO"
	case team.ProviderCoreWeave:
		return "COREWEAVE"
	case team.ProviderGCS:
		return "GCP"
	case team.ProviderAzure:
		return "AZURE"
	}
	return ""
}

// BucketFor is the storageBucket value W&B is given for the storage when the team is created.
func BucketFor(s team.Storage, kmsKeyARN string) *StorageBucket {
	sb := &StorageBucket{Name: s.Bucket, Provider: Provider(s.Provider), Path: s.Path}
	switch s.Provider {
	case team.ProviderAWS:
		sb.KMSKeyID, sb.AWSExternalID = kmsKeyARN, s.AWSExternalID
	case team.ProviderAzure:
		sb.AzureTenantID, sb.AzureClientID = s.AzureTenantID, s.AzureClientID
	}
	return sb
}

// Providers lists the values W&B accepts in StorageBucket.Provider, in W&B's order.
var Providers = []string{"AWS", "GCP", "AZURE", "COREWEAVE", "MINIO"}
