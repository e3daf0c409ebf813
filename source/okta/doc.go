// Package okta reads groups and their members from Okta's Groups API (GET /api/v1/groups,
// /api/v1/groups/{id}, /api/v1/groups/{id}/users), authenticating with an SSWS API token or with OAuth 2.0
// client credentials (private_key_jwt, with DPoP when the service app requires it: dpop.go). Okta groups
// do not nest, so members are direct members. Its LogPoller reads the System Log for the events an event
// hook would deliver (logs.go), and EventKey maps those events to queue keys for the hook receiver too.
//
// Members: a user's email is profile.email, or profile.login when that is an email address; users with
// neither are skipped. DEPROVISIONED (deactivated) users are skipped: Okta keeps their group memberships,
// but they can no longer sign in, so they should not hold W&B seats. SUSPENDED and not-yet-activated users
// are kept: those states are temporary, and dropping them would churn team membership.
package okta
