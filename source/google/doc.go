// Package google reads groups and their members from Google Workspace through the Admin SDK Directory
// API, authenticating as a service account with domain-wide delegation that impersonates an admin.
//
// No Google SDK is used: the four REST calls (token, groups.list, groups.get, members.list) are small,
// and owning them keeps the agent lean and lets the fake in directoryfake be strict.
//
// Membership rules: nested groups are flattened by the API (includeDerivedMembership=true); only members
// of type USER count; suspended users are left out, because they cannot sign in and W&B access should
// follow that; a CUSTOMER member ("everyone in the domain") carries no email and is ignored.
package google
