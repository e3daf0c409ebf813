package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/byob-agent/byob-agent/state"
	"github.com/elimity-com/scim"
	scimerr "github.com/elimity-com/scim/errors"
)

// users is the library's handler for /Users.
type users struct{ h *handler }

func (u users) Create(r *http.Request, attrs scim.ResourceAttributes) (scim.Resource, error) {
	var user state.SCIMUser
	if err := setUser(&user, attrs); err != nil {
		return scim.Resource{}, err
	}
	user, err := u.h.store.CreateSCIMUser(r.Context(), user)
	if err != nil {
		return scim.Resource{}, u.h.fail(r.Context(), "create user", "", err)
	}
	return userResource(r, user), nil
}

func (u users) Get(r *http.Request, id string) (scim.Resource, error) {
	user, err := u.h.store.SCIMUser(r.Context(), id)
	if err != nil {
		return scim.Resource{}, u.h.fail(r.Context(), "read user", id, err)
	}
	return userResource(r, user), nil
}

func (u users) GetAll(r *http.Request, p scim.ListRequestParams) (scim.Page, error) {
	q := queryFrom(r.Context())
	list := state.SCIMList[state.SCIMUser]{By: q.by, Value: q.value, Start: p.StartIndex - 1, Count: p.Count}
	if keep := q.keep(); keep != nil {
		list.Keep = func(user state.SCIMUser) bool { return keep(withID(user.Attributes, user.ID)) }
	}
	page, total, err := u.h.store.ListSCIMUsers(r.Context(), list)
	if err != nil {
		return scim.Page{}, u.h.fail(r.Context(), "list users", "", err)
	}
	return render(r, total, page, func(user state.SCIMUser) (scim.Resource, error) { return userResource(r, user), nil })
}

func (u users) Replace(r *http.Request, id string, attrs scim.ResourceAttributes) (scim.Resource, error) {
	return u.update(r, id, "replace user", func(user *state.SCIMUser) error { return setUser(user, attrs) })
}

func (u users) Patch(r *http.Request, id string, ops []scim.PatchOperation) (scim.Resource, error) {
	if err := checkOps(ops); err != nil {
		return scim.Resource{}, err
	}
	return u.update(r, id, "patch user", func(user *state.SCIMUser) error {
		attrs := user.Attributes
		if attrs == nil {
			attrs = map[string]any{}
		}
		for _, op := range ops {
			if err := userScope.apply(attrs, op); err != nil {
				return err
			}
		}
		return setUser(user, attrs)
	})
}

// update has the store run change on the current user after the If-Match check.
func (u users) update(r *http.Request, id, action string, change func(*state.SCIMUser) error) (scim.Resource, error) {
	cond := ifMatch(r)
	user, groups, err := u.h.store.UpdateSCIMUser(r.Context(), id, func(user *state.SCIMUser) error {
		if err := cond.check(user.Version); err != nil {
			return err
		}
		return change(user)
	})
	if err != nil {
		return scim.Resource{}, u.h.fail(r.Context(), action, id, err)
	}
	u.h.changed(groups...)
	return userResource(r, user), nil
}

func (u users) Delete(r *http.Request, id string) error {
	cond := ifMatch(r)
	groups, err := u.h.store.DeleteSCIMUser(r.Context(), id, func(user state.SCIMUser) error { return cond.check(user.Version) })
	if err != nil {
		return u.h.fail(r.Context(), "delete user", id, err)
	}
	u.h.changed(groups...)
	return nil
}

// setUser stores validated attributes in user, with the fields the store indexes derived from
// them. A password is never kept, so it can never be echoed.
func setUser(user *state.SCIMUser, attrs map[string]any) error {
	attrs = compact(attrs)
	delete(attrs, "password")
	name, err := normalized(attrs, "userName")
	if err != nil {
		return err
	}
	active, ok := attrs["active"].(bool)
	user.Active = active || !ok // absent means active
	user.UserName = name
	user.ExternalID, _ = attrs["externalId"].(string)
	user.Email = primaryEmail(attrs["emails"])
	user.Attributes = attrs
	return nil
}

// primaryEmail is the primary email, else the work one, else the first.
func primaryEmail(v any) string {
	var work, first string
	for _, e := range list(v) {
		m, _ := e.(map[string]any)
		addr, _ := m["value"].(string)
		switch {
		case addr == "":
		case m["primary"] == true:
			return addr
		case work == "" && m["type"] == "work":
			work = addr
		case first == "":
			first = addr
		}
	}
	return cmp.Or(work, first)
}

// normalized is a resource's unique name as the store keeps it (state.NormalizeSCIMName), written
// back into attrs; a missing or unusable one is a 400 naming the attribute.
func normalized(attrs map[string]any, attr string) (string, error) {
	raw, _ := attrs[attr].(string)
	if strings.TrimSpace(raw) == "" {
		return "", invalidValue(attr + " is required.")
	}
	name, err := state.NormalizeSCIMName(raw)
	if err != nil {
		return "", invalidValue(attr + ": " + strings.TrimPrefix(err.Error(), state.ErrSCIMInvalid.Error()+": ") + ".")
	}
	attrs[attr] = name
	return name, nil
}

func userResource(r *http.Request, u state.SCIMUser) scim.Resource {
	return scim.Resource{ID: u.ID, Attributes: projectionFrom(r.Context()).project(u.Attributes), Meta: meta(u.Created, u.Modified, u.Version)}
}

// groups is the library's handler for /Groups.
type groups struct{ h *handler }

func (g groups) Create(r *http.Request, attrs scim.ResourceAttributes) (scim.Resource, error) {
	var group state.SCIMGroup
	if err := setGroup(&group, attrs); err != nil {
		return scim.Resource{}, err
	}
	want := group.MemberIDs
	group, err := g.h.store.CreateSCIMGroup(r.Context(), group)
	if err != nil {
		return scim.Resource{}, g.h.fail(r.Context(), "create group", "", err)
	}
	g.h.log.Info("SCIM group created", "group", group.DisplayName, "id", group.ID)
	g.h.dropped(group, want)
	g.h.changed(group.ID)
	return g.h.groupResource(r, group)
}

func (g groups) Get(r *http.Request, id string) (scim.Resource, error) {
	group, err := g.h.store.SCIMGroup(r.Context(), id)
	if err == nil && group.Deleted {
		err = state.ErrSCIMNotFound
	}
	if err != nil {
		return scim.Resource{}, g.h.fail(r.Context(), "read group", id, err)
	}
	return g.h.groupResource(r, group)
}

func (g groups) GetAll(r *http.Request, p scim.ListRequestParams) (scim.Page, error) {
	q := queryFrom(r.Context())
	list := state.SCIMList[state.SCIMGroup]{By: q.by, Value: q.value, Start: p.StartIndex - 1, Count: p.Count}
	if keep := q.keep(); keep != nil {
		list.Keep = func(group state.SCIMGroup) bool { return keep(withID(groupAttrs(group), group.ID)) }
	}
	page, total, err := g.h.store.ListSCIMGroups(r.Context(), list)
	if err != nil {
		return scim.Page{}, g.h.fail(r.Context(), "list groups", "", err)
	}
	return render(r, total, page, func(group state.SCIMGroup) (scim.Resource, error) { return g.h.groupResource(r, group) })
}

func (g groups) Replace(r *http.Request, id string, attrs scim.ResourceAttributes) (scim.Resource, error) {
	return g.update(r, id, "replace group", func(group *state.SCIMGroup) error { return setGroup(group, attrs) })
}

func (g groups) Patch(r *http.Request, id string, ops []scim.PatchOperation) (scim.Resource, error) {
	if err := checkOps(ops); err != nil {
		return scim.Resource{}, err
	}
	if merge, ok := memberOps(ops); ok {
		return g.update(r, id, "patch group", func(group *state.SCIMGroup) error {
			group.MemberIDs = merge(group.MemberIDs)
			return nil
		})
	}
	return g.update(r, id, "patch group", func(group *state.SCIMGroup) error {
		attrs := groupAttrs(*group)
		for _, op := range ops {
			if err := groupScope.apply(attrs, op); err != nil {
				return err
			}
		}
		return setGroup(group, attrs)
	})
}

func (g groups) Delete(r *http.Request, id string) error {
	_, err := g.update(r, id, "delete group", func(group *state.SCIMGroup) error {
		group.Deleted = true
		return nil
	})
	return err
}

// update has the store run change (outside its write transaction, on the current group) after the
// If-Match check, and reports a committed change to the daemon.
func (g groups) update(r *http.Request, id, action string, change func(*state.SCIMGroup) error) (scim.Resource, error) {
	cond := ifMatch(r)
	var (
		version uint64
		want    []string
	)
	group, err := g.h.store.UpdateSCIMGroup(r.Context(), id, func(group *state.SCIMGroup) error {
		if err := cond.check(group.Version); err != nil {
			return err
		}
		version = group.Version
		err := change(group)
		want = group.MemberIDs
		return err
	})
	if err != nil {
		return scim.Resource{}, g.h.fail(r.Context(), action, id, err)
	}
	g.h.dropped(group, want)
	if group.Version != version {
		g.h.log.Info("SCIM group changed", "group", group.DisplayName, "id", id, "change", action)
		g.h.changed(id)
	}
	return g.h.groupResource(r, group)
}

// setGroup stores validated group attributes in group.
func setGroup(group *state.SCIMGroup, attrs map[string]any) error {
	name, err := normalized(attrs, "displayName")
	if err != nil {
		return err
	}
	group.DisplayName = name
	group.ExternalID, _ = attrs["externalId"].(string)
	group.MemberIDs = nil
	for _, m := range list(attrs["members"]) {
		if id, _ := asMap(m)["value"].(string); id != "" {
			group.MemberIDs = append(group.MemberIDs, id)
		}
	}
	return nil
}

// groupAttrs is the group as SCIM attributes, which filters and PATCH operations work on.
func groupAttrs(g state.SCIMGroup) map[string]any {
	attrs := groupCore(g)
	var members []any
	for _, id := range g.MemberIDs {
		members = append(members, map[string]any{"value": id})
	}
	if members != nil {
		attrs["members"] = members
	}
	return attrs
}

// groupResource renders a group, reading its members' summaries only when the answer shows them.
// groupCore is a group's attributes but its members.
func groupCore(g state.SCIMGroup) map[string]any {
	attrs := map[string]any{"displayName": g.DisplayName}
	if g.ExternalID != "" {
		attrs["externalId"] = g.ExternalID
	}
	return attrs
}

func (h *handler) groupResource(r *http.Request, g state.SCIMGroup) (scim.Resource, error) {
	attrs := groupCore(g)
	proj := projectionFrom(r.Context())
	if proj.shows("members") && len(g.MemberIDs) > 0 {
		ms, err := h.store.SCIMMembers(r.Context(), g.MemberIDs)
		if err != nil {
			return scim.Resource{}, h.fail(r.Context(), "read group members", g.ID, err)
		}
		var members []any
		for _, m := range ms {
			// Entra and Okta show a member by its displayName, falling back to the user name.
			display := m.DisplayName
			if display == "" {
				display = m.UserName
			}
			members = append(members, map[string]any{"value": m.ID, "display": display, "type": "User", "$ref": h.base + "/Users/" + m.ID})
		}
		if members != nil {
			attrs["members"] = members
		}
	}
	return scim.Resource{ID: g.ID, Attributes: proj.project(attrs), Meta: meta(g.Created, g.Modified, g.Version)}, nil
}

// logSample is how many ids a log line quotes of a longer list.
const logSample = 5

// dropped logs member ids a write asked for that name no user (the store keeps the others).
func (h *handler) dropped(g state.SCIMGroup, want []string) {
	if len(want) <= len(g.MemberIDs) {
		return // the store keeps a subset of want, deduped: all of it
	}
	var unknown []string
	for _, id := range want {
		if _, found := slices.BinarySearch(g.MemberIDs, id); !found {
			unknown = append(unknown, id)
		}
	}
	if unknown != nil {
		h.log.Warn("SCIM group members name no user and were ignored", "group", g.DisplayName, "id", g.ID,
			"count", len(unknown), "sample", unknown[:min(len(unknown), logSample)])
	}
}

func (h *handler) changed(groupIDs ...string) {
	for _, id := range groupIDs {
		h.onChange(id)
	}
}

// fail turns a store or handler error into the SCIM error to answer with. Store failures are
// logged and answered without their detail.
func (h *handler) fail(ctx context.Context, action, id string, err error) error {
	var (
		se    scimerr.ScimError
		limit *state.SCIMLimitError
	)
	switch {
	case errors.As(err, &se):
		return se
	case errors.Is(err, state.ErrSCIMNotFound):
		return scimerr.ScimErrorResourceNotFound(id)
	case errors.Is(err, state.ErrSCIMConflict):
		return scimerr.ScimErrorUniqueness
	case errors.Is(err, state.ErrSCIMInvalid):
		return scimerr.ScimErrorInvalidValue
	case errors.As(err, &limit):
		return limitError(limit)
	case errors.Is(err, state.ErrSCIMBusy):
		return scimerr.ScimError{Status: http.StatusServiceUnavailable, Detail: "The resource is being changed by other requests; try again."}
	case ctx.Err() != nil:
		return scimerr.ScimError{Status: http.StatusServiceUnavailable, Detail: "The request was cancelled before it was answered."}
	}
	h.log.ErrorContext(ctx, "SCIM request failed in the state store", "action", action, "id", id, "error", err)
	return scimerr.ScimError{Status: http.StatusInternalServerError, Detail: "The agent's state store failed; nothing was changed."}
}

// limitError answers a write a configured limit refuses: 400 invalidValue for the size of one
// resource, 403 for the number of resources (RFC 7644 section 3.12 has no quota error).
func limitError(l *state.SCIMLimitError) scimerr.ScimError {
	detail := fmt.Sprintf("Refused: %s (a limit of the agent's configuration, scim.limits).", l)
	if l.What == "users" || l.What == "groups" {
		return scimerr.ScimError{Status: http.StatusForbidden, Detail: detail}
	}
	return invalidValue(detail)
}

func invalidValue(detail string) scimerr.ScimError {
	e := scimerr.ScimErrorInvalidValue
	e.Detail = detail
	return e
}

// precondition is a parsed If-Match header: nil when absent.
type precondition []string

func ifMatch(r *http.Request) precondition {
	var tags precondition
	for _, v := range r.Header.Values("If-Match") {
		for t := range strings.SplitSeq(v, ",") {
			if t = strings.TrimPrefix(strings.TrimSpace(t), "W/"); t != "" {
				tags = append(tags, t)
			}
		}
	}
	return tags
}

var errPrecondition = scimerr.ScimError{Status: http.StatusPreconditionFailed, Detail: "The resource changed: If-Match does not match its current version."}

// check compares weakly, as SCIM clients echo the weak ETag they were given.
func (p precondition) check(version uint64) error {
	if p == nil {
		return nil
	}
	want := strconv.Quote(strconv.FormatUint(version, 10))
	for _, t := range p {
		if t == "*" || t == want {
			return nil
		}
	}
	return errPrecondition
}

func meta(created, modified time.Time, version uint64) scim.Meta {
	return scim.Meta{Created: &created, LastModified: &modified, Version: fmt.Sprintf(`W/"%d"`, version)}
}

// withID is a resource as filters see it: its attributes and its id.
func withID(attrs map[string]any, id string) map[string]any {
	m := maps.Clone(attrs)
	if m == nil {
		m = map[string]any{}
	}
	m["id"] = id
	return m
}

// render renders a page the store returned, stopping when the client is gone.
func render[T any](r *http.Request, total int, items []T, fn func(T) (scim.Resource, error)) (scim.Page, error) {
	page := scim.Page{TotalResults: total, Resources: make([]scim.Resource, 0, len(items))}
	for _, x := range items {
		if err := r.Context().Err(); err != nil {
			return scim.Page{}, scimerr.ScimError{Status: http.StatusServiceUnavailable, Detail: "The request was cancelled before it was answered."}
		}
		res, err := fn(x)
		if err != nil {
			return scim.Page{}, err
		}
		page.Resources = append(page.Resources, res)
	}
	if n, ok := r.Context().Value(pageKey{}).(*int); ok {
		*n = len(page.Resources)
	}
	return page, nil
}
