package graphfake

import (
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

const maxTop = 999

// checkQuery rejects query options outside allowed, repeated options, and invalid $top, $count and
// $select values. props are the properties $select may name.
func checkQuery(w http.ResponseWriter, r *http.Request, props []string, allowed ...string) (url.Values, bool) {
	q := r.URL.Query()
	for k, v := range q {
		if !slices.Contains(allowed, k) {
			writeError(w, http.StatusBadRequest, "BadRequest", fmt.Sprintf("Unrecognized query argument specified: '%s'.", k))
			return nil, false
		}
		if len(v) != 1 {
			writeError(w, http.StatusBadRequest, "BadRequest", fmt.Sprintf("Query option '%s' was specified more than once, but it must be specified at most once.", k))
			return nil, false
		}
	}
	if q.Has("$top") {
		n, err := strconv.Atoi(q.Get("$top"))
		if err != nil || n < 1 || n > maxTop {
			writeError(w, http.StatusBadRequest, "Request_BadRequest", fmt.Sprintf("Invalid page size specified: '%s'. Must be between 1 and %d inclusive.", q.Get("$top"), maxTop))
			return nil, false
		}
	}
	if c := q.Get("$count"); q.Has("$count") && c != "true" && c != "false" {
		writeError(w, http.StatusBadRequest, "BadRequest", fmt.Sprintf("Invalid value '%s' for $count query option found. Valid values are 'true', 'false'.", c))
		return nil, false
	}
	if q.Has("$select") {
		for p := range strings.SplitSeq(q.Get("$select"), ",") {
			if !slices.Contains(props, strings.TrimSpace(p)) {
				writeError(w, http.StatusBadRequest, "BadRequest", fmt.Sprintf("Parsing OData Select and Expand failed: Could not find a property named '%s' on type 'microsoft.graph.directoryObject'.", strings.TrimSpace(p)))
				return nil, false
			}
		}
	}
	return q, true
}

// advanced reports whether a request carries Graph's advanced query parameters.
func advanced(r *http.Request, q url.Values) bool {
	return strings.EqualFold(r.Header.Get("ConsistencyLevel"), "eventual") && q.Get("$count") == "true"
}

func unsupportedWithoutAdvanced(w http.ResponseWriter, what string) {
	writeError(w, http.StatusBadRequest, "Request_UnsupportedQuery", fmt.Sprintf("%s is not supported because the required parameters might be missing. Try adding $count=true query parameter and ConsistencyLevel:eventual header. Refer to https://aka.ms/graph-docs/advanced-queries for more information", what))
}

// render keeps the selected properties of an item (all without $select); a property the item's
// type does not have is left out. typ is the @odata.type to add, if any.
func render(props map[string]any, q url.Values, typ string) map[string]any {
	out := map[string]any{}
	if typ != "" {
		out["@odata.type"] = typ
	}
	if !q.Has("$select") {
		maps.Copy(out, props)
		return out
	}
	for p := range strings.SplitSeq(q.Get("$select"), ",") {
		if v, ok := props[strings.TrimSpace(p)]; ok {
			out[strings.TrimSpace(p)] = v
		}
	}
	return out
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (g *group) props() map[string]any {
	return map[string]any{"id": g.id, "displayName": g.displayName, "mail": nullable(g.mail)}
}

func (o *object) props() map[string]any {
	p := map[string]any{"id": o.id, "mail": nullable(o.mail)}
	if o.typ == "#microsoft.graph.user" {
		p["userPrincipalName"] = o.upn
		p["accountEnabled"] = !o.disabled
	}
	return p
}

func (f *Fake) serveGroups(w http.ResponseWriter, r *http.Request, segs []string) {
	if r.Method != http.MethodGet {
		writeError(w, http.StatusMethodNotAllowed, "Request_BadRequest", "The fake serves groups read-only.")
		return
	}
	if !f.permit(w, readGroups...) {
		return
	}
	if len(segs) == 0 {
		f.listGroups(w, r)
		return
	}
	// group-delta#permissions: the same table as group-list (GroupMember.Read.All least privileged).
	// "/delta is a shortcut for the fully qualified name /microsoft.graph.delta" (delta-query-overview).
	if len(segs) == 1 && (segs[0] == "delta" || segs[0] == "microsoft.graph.delta") {
		f.delta(w, r)
		return
	}
	id := segs[0]
	if !isGUID(id) {
		writeError(w, http.StatusBadRequest, "Request_BadRequest", fmt.Sprintf("Invalid object identifier '%s'.", id))
		return
	}
	f.mu.Lock()
	g, ok := f.groups[strings.ToLower(id)]
	f.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "Request_ResourceNotFound", fmt.Sprintf("Resource '%s' does not exist or one of its queried reference-property objects are not present.", id))
		return
	}
	switch {
	case len(segs) == 1:
		q, ok := checkQuery(w, r, groupProps, "$select")
		if ok {
			f.mu.Lock()
			props := g.props()
			f.mu.Unlock()
			writeJSON(w, http.StatusOK, render(props, q, ""))
		}
	case strings.EqualFold(segs[1], "transitiveMembers") && (len(segs) == 2 || len(segs) == 3 && segs[2] == "microsoft.graph.user"):
		f.transitiveMembers(w, r, g, len(segs) == 3)
	default:
		writeError(w, http.StatusBadRequest, "BadRequest", fmt.Sprintf("Resource not found for the segment '%s'.", segs[len(segs)-1]))
	}
}

func (f *Fake) listGroups(w http.ResponseWriter, r *http.Request) {
	q, ok := checkQuery(w, r, groupProps, "$filter", "$select", "$top", "$count", "$skiptoken")
	if !ok {
		return
	}
	var flt parsed
	if q.Has("$filter") {
		var err error
		if flt, err = parseFilter(q.Get("$filter")); err != nil {
			writeError(w, http.StatusBadRequest, "BadRequest", "Invalid filter clause: "+err.Error())
			return
		}
		if flt.advanced != "" && !advanced(r, q) {
			unsupportedWithoutAdvanced(w, fmt.Sprintf("Operator '%s'", flt.advanced))
			return
		}
	}
	f.mu.Lock()
	var items []map[string]any
	for _, id := range slices.Sorted(maps.Keys(f.groups)) {
		if g := f.groups[id]; flt.e == nil || flt.e.match(g) {
			items = append(items, render(g.props(), q, ""))
		}
	}
	f.mu.Unlock()
	f.page(w, r, q, items, "groups")
}

// transitiveMembers lists the members of g and of its nested groups, each once. The cast to
// microsoft.graph.user needs the advanced query parameters, as Graph documents.
func (f *Fake) transitiveMembers(w http.ResponseWriter, r *http.Request, g *group, usersOnly bool) {
	q, ok := checkQuery(w, r, []string{"id", "displayName", "mail", "userPrincipalName", "accountEnabled"}, "$select", "$top", "$count", "$skiptoken")
	if !ok {
		return
	}
	if usersOnly && !advanced(r, q) {
		unsupportedWithoutAdvanced(w, "OData cast 'microsoft.graph.user'")
		return
	}
	f.mu.Lock()
	seen := map[string]bool{strings.ToLower(g.id): true}
	var items []map[string]any
	for queue := slices.Clone(g.members); len(queue) > 0; queue = queue[1:] {
		id := strings.ToLower(queue[0])
		if seen[id] {
			continue
		}
		seen[id] = true
		if ng, ok := f.groups[id]; ok {
			queue = append(queue, ng.members...)
			if !usersOnly {
				items = append(items, render(f.limited("#microsoft.graph.group", ng.props()), q, "#microsoft.graph.group"))
			}
		} else if o, ok := f.objects[id]; ok && (!usersOnly || o.typ == "#microsoft.graph.user") {
			typ := o.typ
			if usersOnly {
				typ = "" // a cast collection is of one type
			}
			items = append(items, render(f.limited(o.typ, o.props()), q, typ))
		}
	}
	f.mu.Unlock()
	ctx := "directoryObjects"
	if usersOnly {
		ctx = "users"
	}
	f.page(w, r, q, items, ctx)
}

// page writes one page of items: from the offset of $skiptoken, at most min($top, PageSize) of them,
// with an @odata.nextLink that repeats the query and adds a fresh $skiptoken.
func (f *Fake) page(w http.ResponseWriter, r *http.Request, q url.Values, items []map[string]any, context string) {
	rest := url.Values{}
	for k, v := range q {
		if k != "$skiptoken" {
			rest[k] = v
		}
	}
	key := r.URL.Path + "?" + rest.Encode()
	offset := 0
	f.mu.Lock()
	defer f.mu.Unlock()
	if q.Has("$skiptoken") {
		c, ok := f.skipTokens[q.Get("$skiptoken")]
		if !ok || c.key != key {
			writeError(w, http.StatusBadRequest, "Directory_ExpiredPageToken", "The specified page token value has expired and can no longer be included in your request.")
			return
		}
		offset = c.offset
	}
	size := 100
	if q.Has("$top") {
		size, _ = strconv.Atoi(q.Get("$top"))
	}
	size = min(size, f.cfg.PageSize)
	offset = min(offset, len(items))
	end := min(offset+size, len(items))
	body := map[string]any{"@odata.context": "http://" + r.Host + "/v1.0/$metadata#" + context, "value": items[offset:end]}
	if items == nil {
		body["value"] = []any{}
	}
	if advanced(r, q) {
		body["@odata.count"] = len(items)
	}
	if end < len(items) {
		tok := strings.ReplaceAll(newID()+newID(), "-", "")
		f.skipTokens[tok] = cursor{key: key, offset: end}
		next := url.Values{"$skiptoken": {tok}}
		maps.Copy(next, rest)
		body["@odata.nextLink"] = "http://" + r.Host + r.URL.Path + "?" + next.Encode()
	}
	writeJSON(w, http.StatusOK, body)
}
