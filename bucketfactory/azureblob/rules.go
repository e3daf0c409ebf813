package azureblob

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"

	"github.com/byob-agent/byob-agent/bucketfactory"
)

// metaKey turns an ownership tag name of package bucketfactory into an Azure metadata name, which must
// be a C# identifier: '-' becomes '_'.
func metaKey(tag string) string { return strings.ReplaceAll(tag, "-", "_") }

var (
	keyManagedBy = metaKey(bucketfactory.TagManagedBy) // managed_by
	keyTeam      = metaKey(bucketfactory.TagTeam)      // byob_agent_team
	keyShared    = metaKey(bucketfactory.TagShared)    // byob_agent_shared
)

// ownerMark is the metadata item that says whose the container is.
func ownerMark(b bucketfactory.Bucket) (key, value string) {
	k, v := b.Owner()
	return metaKey(k), v
}

// ownershipMarks is the metadata the agent puts on a container of b's owner.
func ownershipMarks(b bucketfactory.Bucket) map[string]string {
	key, value := ownerMark(b)
	return map[string]string{keyManagedBy: bucketfactory.TagManagedByValue, key: value}
}

// metaValue returns the value of a metadata item, looked up without regard to case as Azure does (the
// SDK even returns names as canonical HTTP header names, "Managed_by").
func metaValue(md map[string]string, key string) string {
	for k, v := range md {
		if strings.EqualFold(k, key) {
			return v
		}
	}
	return ""
}

// foreignMark says how the metadata marks the container for someone other than b's owner ("marked for
// team \"x\"", "marked as the shared container of profile \"p\""), or "" when it marks it for b's owner
// or no one.
func foreignMark(md map[string]string, b bucketfactory.Bucket) string {
	key, value := ownerMark(b)
	for _, k := range []string{keyTeam, keyShared} {
		v := metaValue(md, k)
		if v == "" || (k == key && v == value) {
			continue
		}
		if k == keyTeam {
			return fmt.Sprintf("marked for team %q", v)
		}
		return fmt.Sprintf("marked as the shared container of profile %q", v)
	}
	return ""
}

// mergeMarks returns md with the marks set, keeping every other item. An item whose name differs from a
// mark's only in case is the same item to Azure: it is replaced, since sending both is refused.
// changed is false when every mark is already there with its value.
func mergeMarks(md, marks map[string]string) (merged map[string]string, changed bool) {
	merged = maps.Clone(md)
	if merged == nil {
		merged = map[string]string{}
	}
	for mk, mv := range marks {
		if metaValue(md, mk) == mv {
			continue
		}
		maps.DeleteFunc(merged, func(k, _ string) bool { return strings.EqualFold(k, mk) })
		merged[mk] = mv
		changed = true
	}
	return merged, changed
}

func fromMetadata(md map[string]*string) map[string]string {
	out := make(map[string]string, len(md))
	for k, v := range md {
		if v != nil {
			out[k] = *v
		}
	}
	return out
}

func toMetadata(md map[string]string) map[string]*string {
	out := make(map[string]*string, len(md))
	for k, v := range md {
		out[k] = to.Ptr(v)
	}
	return out
}

func describeMarks(md map[string]string) string {
	var parts []string
	for _, k := range []string{keyManagedBy, keyTeam, keyShared} {
		if v := metaValue(md, k); v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	if len(parts) == 0 {
		return "no ownership metadata"
	}
	return strings.Join(parts, ", ")
}

// maxCORSRules is how many CORS rules Azure allows on a Blob service. Azurite does not enforce it.
const maxCORSRules = 5

// wandbCORSRule is the rule W&B needs on the account's Blob service: browsers upload and download
// through pre-signed (SAS) URLs.
func wandbCORSRule() *service.CORSRule {
	return &service.CORSRule{
		AllowedOrigins:  to.Ptr("*"),
		AllowedMethods:  to.Ptr("GET,HEAD,PUT"),
		AllowedHeaders:  to.Ptr("*"),
		ExposedHeaders:  to.Ptr("*"),
		MaxAgeInSeconds: to.Ptr[int32](3000),
	}
}

// equivalentCORSRule compares two rules as Azure applies them: the comma-separated lists are sets,
// methods and header names are case-insensitive, origins are not.
func equivalentCORSRule(a, b *service.CORSRule) bool {
	return slices.Equal(listOf(a.AllowedMethods, strings.ToUpper), listOf(b.AllowedMethods, strings.ToUpper)) &&
		slices.Equal(listOf(a.AllowedOrigins, nil), listOf(b.AllowedOrigins, nil)) &&
		slices.Equal(listOf(a.AllowedHeaders, strings.ToLower), listOf(b.AllowedHeaders, strings.ToLower)) &&
		slices.Equal(listOf(a.ExposedHeaders, strings.ToLower), listOf(b.ExposedHeaders, strings.ToLower)) &&
		deref(a.MaxAgeInSeconds) == deref(b.MaxAgeInSeconds)
}

// listOf returns a comma-separated list as a sorted set, each element trimmed and normalised by norm
// (nil: as is).
func listOf(s *string, norm func(string) string) []string {
	var out []string
	for _, e := range strings.Split(deref(s), ",") {
		if e = strings.TrimSpace(e); e == "" {
			continue
		}
		if norm != nil {
			e = norm(e)
		}
		out = append(out, e)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func hasWandbCORSRule(rules []*service.CORSRule) bool {
	want := wandbCORSRule()
	return slices.ContainsFunc(rules, func(r *service.CORSRule) bool { return r != nil && equivalentCORSRule(r, want) })
}

// mergeCORSRules returns the account's rules with W&B's present; every other rule is kept. A missing rule
// goes first: Azure answers a preflight with the first rule that matches origin, method and headers, and
// an earlier broad rule of someone else's could otherwise withhold the headers W&B needs exposed.
// changed is false when an equivalent rule is already there; it is an error when Azure's limit of five
// rules leaves no room.
func mergeCORSRules(rules []*service.CORSRule) (merged []*service.CORSRule, changed bool, err error) {
	if hasWandbCORSRule(rules) {
		return rules, false, nil
	}
	if len(rules) >= maxCORSRules {
		return rules, false, fmt.Errorf("its Blob service already has %d CORS rules, Azure's maximum, and none equal to W&B's (%s): remove a rule or make one equal to W&B's, then run byob-agent sync",
			len(rules), describeCORSRule(wandbCORSRule()))
	}
	return append([]*service.CORSRule{wandbCORSRule()}, rules...), true, nil
}

func describeCORSRules(rules []*service.CORSRule) string {
	if len(rules) == 0 {
		return "no CORS rules"
	}
	parts := make([]string, len(rules))
	for i, r := range rules {
		parts[i] = describeCORSRule(r)
	}
	return strings.Join(parts, "; ")
}

func describeCORSRule(r *service.CORSRule) string {
	return fmt.Sprintf("methods %s from origins %s, headers %s, exposing %s, max age %d s",
		deref(r.AllowedMethods), deref(r.AllowedOrigins), deref(r.AllowedHeaders), deref(r.ExposedHeaders), deref(r.MaxAgeInSeconds))
}

// retentionOK tells whether blob soft delete is on and keeps deleted blobs at least days days.
func retentionOK(p *service.RetentionPolicy, days int32) bool {
	return p != nil && deref(p.Enabled) && deref(p.Days) >= days
}

// mergeRetention returns the delete retention policy to set: soft delete on for days days. A longer
// retention already set is kept (changed is false): another administrator chose it, and W&B only needs
// soft delete on. AllowPermanentDelete is kept as it was.
func mergeRetention(p *service.RetentionPolicy, days int32) (want *service.RetentionPolicy, changed bool) {
	if retentionOK(p, days) {
		return p, false
	}
	want = &service.RetentionPolicy{Enabled: to.Ptr(true), Days: to.Ptr(days)}
	if p != nil {
		want.AllowPermanentDelete = p.AllowPermanentDelete
	}
	return want, true
}

func describeRetention(p *service.RetentionPolicy) string {
	if p == nil || !deref(p.Enabled) {
		return "off"
	}
	return fmt.Sprintf("on, %d days", deref(p.Days))
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
