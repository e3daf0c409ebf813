// Package entra reads groups and their members from Microsoft Entra ID through Microsoft Graph
// (OAuth 2.0 client credentials with a client secret; application permissions GroupMember.Read.All
// and User.Read.All), and keeps a change-notification subscription on /groups alive (see
// Subscriptions; it needs Group.Read.All too), and catches up on changes with Graph's delta query
// (Delta). It speaks the few REST calls itself, without an SDK.
package entra
