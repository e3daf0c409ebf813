// Package scim speaks SCIM 2.0 for byob-agent: the client of W&B's SCIM API (teams are SCIM Groups).
package scim

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
)

// Providers lists the values W&B accepts in StorageBucket.Provider, in W&B's order.
var Providers = []string{"AWS", "GCP", "AZURE", "COREWEAVE", "MINIO"}
