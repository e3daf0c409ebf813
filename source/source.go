// Package source defines what every reader of an identity provider's groups offers: the groups it
// selects, with their members, and one group again when a webhook names it. One sub-package per IdP.
package source

import "context"

// Group is one group as an identity provider has it.
type Group struct {
	ID   string // the IdP's id: stable across renames
	Name string // display name, as the IdP shows it
	// Members are the members' email addresses, lowercased, sorted, without duplicates. Nested groups
	// are flattened where the IdP supports nesting.
	Members []string
}

// Source reads the groups of one identity provider. Implementations are safe for concurrent use.
type Source interface {
	// Groups returns every group the source's selection matches, with members, following all pages.
	Groups(ctx context.Context) ([]Group, error)
	// Group reads one group by id; found is false when it no longer exists (or is no longer selected).
	Group(ctx context.Context, id string) (g Group, found bool, err error)
}

// Nesting is implemented by a Source whose groups can contain other groups. A change to a nested
// group that is not selected itself changes the members of the selected groups that contain it:
// Containing names those, so that a webhook about the nested group re-reads them.
type Nesting interface {
	// Containing returns the ids of the selected groups that held the group id, directly or deeper,
	// when they were read last; nil when none did.
	Containing(id string) []string
}
