// Package team provides the domain types every part of byob-agent shares: a desired team with its
// members and their roles, the storage it gets (with the agent's provider names), and the naming rules
// for W&B team names, each provider's bucket names and paths inside a bucket.
package team

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
)

// Provider names as they appear in the agent's configuration.
const (
	ProviderAWS          = "aws"
	ProviderS3Compatible = "s3-compatible"
	ProviderCoreWeave    = "coreweave"
	ProviderGCS          = "gcs"
	ProviderAzure        = "azure"
)

// Providers lists every provider name, for messages.
var Providers = []string{ProviderAWS, ProviderS3Compatible, ProviderCoreWeave, ProviderGCS, ProviderAzure}

// Team is one desired W&B team: what a source (the YAML file, an IdP, a SCIM push) asks for.
type Team struct {
	Name    string  // W&B team name; valid per ValidateName
	Profile string  // storage profile the team's storage comes from
	Source  string  // which source asked for it ("yaml", ...)
	Storage Storage // fully resolved desired storage
	// ManageMembers says the source knows the team's members (an IdP group, a SCIM push): only then
	// are members synced. Members are email addresses, lowercased.
	ManageMembers bool
	Members       []string
	// Roles gives the team role (RoleAdmin, RoleViewer, ...) of the members a role rule names; a member
	// not in it keeps whatever role W&B gives (member), unless the agent set another role before.
	Roles map[string]string
	// Claims names every source entry that asked for this team ("yaml", `okta group "wandb-ml"`). A
	// team comes from one source: more than one claim is a conflict the planner reports.
	Claims []string
	// Adopt, when set, says W&B already has this team (made by hand) and the agent is to take it over
	// with the storage the operator stated (Storage) rather than create it.
	Adopt *Adoption
}

// Adoption is how a team made by hand is taken over.
type Adoption struct {
	// Repair lets the agent fix bucket settings that fail W&B's checks; without it such a bucket is refused.
	Repair bool
}

// Team roles W&B knows without custom roles.
const (
	RoleAdmin  = "admin"
	RoleMember = "member"
	RoleViewer = "viewer"
)

// Roles lists the team roles, for messages and validation.
var Roles = []string{RoleAdmin, RoleMember, RoleViewer}

// Storage is the immutable part of a team: where its data lives. Once a W&B team is created with it,
// it can never change. It holds no secrets, so it may be stored and printed.
type Storage struct {
	Provider string `json:"provider"`           // one of Providers
	Bucket   string `json:"bucket"`             // bucket name (Azure: container name)
	Path     string `json:"path,omitempty"`     // prefix inside the bucket
	Region   string `json:"region,omitempty"`   // bucket region (GCS: location)
	Endpoint string `json:"endpoint,omitempty"` // API endpoint URL; empty means the provider's default
	Account  string `json:"account,omitempty"`  // Azure storage account
	// Shared says several teams use the bucket, each under its own Path.
	Shared bool `json:"shared,omitempty"`
	// KMSKeyARN is the customer key for SSE-KMS. Empty with CreateKMSKey set means the agent creates one
	// key for the team; empty without it means no SSE-KMS (s3-compatible only).
	KMSKeyARN     string `json:"kmsKeyArn,omitempty"`
	CreateKMSKey  bool   `json:"createKmsKey,omitempty"`
	AWSExternalID string `json:"awsExternalId,omitempty"`
	AzureTenantID string `json:"azureTenantId,omitempty"`
	AzureClientID string `json:"azureClientId,omitempty"`
}

// Digest identifies the storage spec. Two specs with the same digest give the team the same storage.
// It is what the state records to detect a later change of a created team's storage.
func (s Storage) Digest() string {
	b, err := json.Marshal(s)
	if err != nil { // a struct of strings and bools always marshals
		panic(fmt.Sprintf("team: marshal storage: %v", err))
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// BucketID identifies the bucket across profiles and servers (one name may exist on several servers);
// teams sharing a bucket have the same BucketID.
func (s Storage) BucketID() string {
	return s.Provider + "|" + s.Endpoint + "|" + s.Account + "|" + s.Bucket
}

// MaxNameLength is the longest team name the agent accepts. W&B does not publish a limit; 64 is an
// inference from its entity names and keeps derived bucket names within S3's 63 characters in common templates.
const MaxNameLength = 64

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// ValidateName checks a name the agent can work with: lowercase letters, digits, '-' and '_', starting
// with a letter or digit. That is wider than W&B's documented rule (see CheckDocumented), which the
// configuration applies unless the operator opts out.
func ValidateName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("team name is empty")
	case len(name) > MaxNameLength:
		return fmt.Errorf("team name %q is %d characters long; at most %d are allowed", name, len(name), MaxNameLength)
	case !nameRE.MatchString(name):
		return fmt.Errorf("team name %q is not a valid W&B team name: use lowercase letters, digits, '-' and '_' only, starting with a letter or digit", name)
	}
	return nil
}

// CheckDocumented checks a name against W&B's documented rule for team names, "lowercase letters,
// numbers and hyphens" (https://docs.wandb.ai/support/create_team). The error suggests a name that
// follows it.
func CheckDocumented(name string) error {
	if i := strings.IndexFunc(name, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') }); i >= 0 {
		suggest := strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
				return r
			}
			return '-'
		}, strings.ToLower(name))
		return fmt.Errorf("team name %q has %q, outside W&B's documented rule (lowercase letters, numbers and hyphens): use %q, or set wandb.allowUndocumentedTeamNames to send it unverified", name, name[i:i+1], suggest)
	}
	return nil
}
