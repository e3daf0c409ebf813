package graphfake

import (
	"net/http"
	"slices"
	"strings"
)

// Permission is an application permission (app role) of Microsoft Graph the fake's app may hold.
type Permission string

// The application permissions the fake knows. Every rule below cites the Graph page it follows; what
// a page does not say is marked as an inference.
const (
	GroupMemberReadAll Permission = "GroupMember.Read.All"
	GroupReadAll       Permission = "Group.Read.All"
	UserReadAll        Permission = "User.Read.All"
	UserReadBasicAll   Permission = "User.ReadBasic.All"
	DirectoryReadAll   Permission = "Directory.Read.All"
)

// DefaultPermissions are what the fake grants when Config.Permissions is nil: what README asks the
// app registration for (GroupMember.Read.All to read groups and members, User.Read.All to read the
// members' addresses and accountEnabled, Group.Read.All for the /groups subscription).
var DefaultPermissions = []Permission{GroupMemberReadAll, UserReadAll, GroupReadAll}

// SetPermissions replaces the application permissions the app holds (as after an admin changed the
// app registration and consented again). Tokens issued before carry the new set too: the fake does
// not model the token's roles claim lagging behind the consent.
func (f *Fake) SetPermissions(p ...Permission) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.perms = slices.Clone(p)
}

// granted reports whether the app holds one of anyOf. Called with f.mu held.
func (f *Fake) granted(anyOf ...Permission) bool {
	for _, p := range anyOf {
		if slices.Contains(f.perms, p) {
			return true
		}
	}
	return false
}

// permit answers 403 Authorization_RequestDenied unless the app holds one of anyOf.
func (f *Fake) permit(w http.ResponseWriter, anyOf ...Permission) bool {
	f.mu.Lock()
	ok := f.granted(anyOf...)
	f.mu.Unlock()
	if !ok {
		writeError(w, http.StatusForbidden, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
	}
	return ok
}

// Per endpoint, the application permissions that let the app call it: the least privileged one of
// each page's permissions table and the read-only higher ones (write permissions are left out: the
// agent never asks for them).
var (
	// learn.microsoft.com/graph/api/group-list#permissions and .../group-get#permissions:
	// GroupMember.Read.All least privileged; Group.Read.All, Directory.Read.All higher.
	readGroups = []Permission{GroupMemberReadAll, GroupReadAll, DirectoryReadAll}
	// learn.microsoft.com/graph/api/group-list-transitivemembers#permissions: the same table.
	readMembers = readGroups
	// learn.microsoft.com/graph/api/subscription-post-subscriptions#permissions: resource group,
	// application: Group.Read.All. Directory.Read.All is not in that table and is refused here.
	// Inference: get, update and reauthorize of a /groups subscription need the same permission
	// (subscription-get, subscription-update and subscription-reauthorize refer to the same table);
	// listing subscriptions needs none beyond a token (subscription-list: an app sees the
	// subscriptions it created).
	manageGroupSubscriptions = []Permission{GroupReadAll}
	// learn.microsoft.com/graph/permissions-overview#limited-information-returned-for-inaccessible-member-objects
	// and the note on group-list-transitivemembers: when the app may not read a member's type, the
	// member is still listed, but with only @odata.type and id; every other property is null. For
	// users, user-list#permissions: User.ReadBasic.All least privileged, User.Read.All and
	// Directory.Read.All higher.
	readUsers = []Permission{UserReadBasicAll, UserReadAll, DirectoryReadAll}
	// Inference: User.ReadBasic.All covers the basic profile only (displayName, givenName, surname,
	// mail, userPrincipalName, photo; permissions-reference#userreadbasicall); accountEnabled is
	// not part of it and comes back null under that permission alone.
	readUserAccount = []Permission{UserReadAll, DirectoryReadAll}
	// Inference, after the same limited-information rule: contacts and devices need
	// OrgContact.Read.All / Device.Read.All, which the fake does not model; only Directory.Read.All
	// reads them.
	readOtherObjects = []Permission{DirectoryReadAll}
)

// limited reduces a member's properties to what the app may read: for a type it may not read, every
// property but id is null (the @odata.type is added by render). Called with f.mu held.
func (f *Fake) limited(typ string, props map[string]any) map[string]any {
	var ok bool
	switch typ {
	case "#microsoft.graph.group":
		ok = f.granted(readGroups...)
	case "#microsoft.graph.user":
		ok = f.granted(readUsers...)
		if ok && !f.granted(readUserAccount...) {
			if _, has := props["accountEnabled"]; has {
				props["accountEnabled"] = nil
			}
		}
	default:
		ok = f.granted(readOtherObjects...)
	}
	if ok {
		return props
	}
	for k := range props {
		if !strings.EqualFold(k, "id") {
			props[k] = nil
		}
	}
	return props
}
