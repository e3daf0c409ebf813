package graphfake

import (
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// GET /v1.0/groups/delta: Graph's change tracking on groups, after
// learn.microsoft.com/graph/api/group-delta, learn.microsoft.com/graph/delta-query-overview and
// learn.microsoft.com/graph/delta-query-groups. A round is one or more requests: the initial one
// (optionally $select, $filter by id, or $deltatoken=latest), then the @odata.nextLink of each page
// until the last page, which carries an @odata.deltaLink; that link starts the next round and returns
// what changed since it was issued.

// DeltaTokenLifetime is how long a delta link stays usable: seven days for directory objects
// (delta-query-overview#token-duration).
const DeltaTokenLifetime = 7 * 24 * time.Hour

// maxDeltaFilterIDs: group-delta "There is a limit of 50 filtered objects."
const maxDeltaFilterIDs = 50

// groupState is a group as a delta token remembers it.
type groupState struct {
	displayName, mail string
	members           map[string]string // member id (lowercase) -> @odata.type
}

// deltaState is what a delta token stands for: the tracked groups as they were when it was issued,
// and the query of the round that issued it (Graph encodes the query in its tokens).
type deltaState struct {
	issued time.Time
	groups map[string]groupState // by lowercase id
	query  deltaQuery
}

// deltaQuery is the part of a delta request its tokens carry.
type deltaQuery struct {
	props []string        // selected properties; members is the relationship
	ids   map[string]bool // $filter=id eq ... ; nil tracks every group
}

// deltaPages is the rest of a round after a page: the items left and the state its deltaLink gets.
type deltaPages struct {
	items []map[string]any
	next  *deltaState
}

// ExpireDeltaTokens forgets every issued delta link, as when the seven days passed or Graph reset
// the sync state: using one is then answered 410 Gone.
func (f *Fake) ExpireDeltaTokens() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.deltaTokens)
}

// groupProps are the group properties $select may name on /groups and /groups/delta.
var groupProps = []string{"id", "displayName", "mail"}

func (f *Fake) delta(w http.ResponseWriter, r *http.Request) {
	// group-delta#query-parameters: $deltatoken and $skiptoken, plus $select and $filter in the
	// initial request. delta-query-overview#optional-query-parameters: $expand, $top and $orderby are
	// not supported for users and groups. Inference: Graph refuses them with 400 like any option it
	// does not support on a request.
	q, ok := checkQuery(w, r, append(slices.Clone(groupProps), "members"), "$select", "$filter", "$deltatoken", "$skiptoken")
	if !ok {
		return
	}
	tokens := 0
	for _, k := range []string{"$deltatoken", "$skiptoken"} {
		if q.Has(k) {
			tokens++
		}
	}
	// delta-query-overview: "Delta queries with both $select and $skipToken will not be supported";
	// the query of a round is encoded in its tokens. Inference: the same for $filter, and for a
	// $deltatoken other than "latest".
	if tokens > 1 || tokens == 1 && q.Get("$deltatoken") != "latest" && (q.Has("$select") || q.Has("$filter")) {
		writeError(w, http.StatusBadRequest, "Request_BadRequest", "Query options $select and $filter are encoded in the state token and cannot be combined with it.")
		return
	}
	minimal := strings.EqualFold(strings.TrimSpace(r.Header.Get("Prefer")), "return=minimal")
	switch {
	case q.Has("$skiptoken"):
		f.mu.Lock()
		rest, ok := f.deltaPages[q.Get("$skiptoken")]
		delete(f.deltaPages, q.Get("$skiptoken"))
		f.mu.Unlock()
		if !ok {
			writeError(w, http.StatusBadRequest, "Directory_ExpiredPageToken", "The specified page token value has expired and can no longer be included in your request.")
			return
		}
		f.deltaPage(w, r, rest)
	case q.Has("$deltatoken") && q.Get("$deltatoken") != "latest":
		f.mu.Lock()
		old, ok := f.deltaTokens[q.Get("$deltatoken")]
		expired := ok && !f.cfg.Now().Before(old.issued.Add(DeltaTokenLifetime))
		f.mu.Unlock()
		if !ok || expired {
			// delta-query-overview#synchronization-reset: 410 Gone with a Location header that
			// starts over; #token-duration: an expired token is a 40X with the code
			// syncStateNotFound (errors#code-property). The message is Graph's as quoted in
			// microsoft-graph-docs issue #2350.
			w.Header().Set("Location", "http://"+r.Host+"/v1.0/groups/delta")
			writeError(w, http.StatusGone, "syncStateNotFound", "The sync state generation is not found; the delta token is expired and data must be synchronized again.")
			return
		}
		f.mu.Lock()
		now := f.snapshot(old.query)
		items := changes(old, now, minimal)
		f.mu.Unlock()
		f.deltaPage(w, r, &deltaPages{items: items, next: now})
	default:
		dq := deltaQuery{props: []string{"displayName", "mail", "members"}}
		if q.Has("$select") {
			dq.props = nil
			for p := range strings.SplitSeq(q.Get("$select"), ",") {
				dq.props = append(dq.props, strings.TrimSpace(p))
			}
		}
		if q.Has("$filter") {
			ids, err := deltaFilter(q.Get("$filter"))
			if err != nil {
				writeError(w, http.StatusBadRequest, "Request_UnsupportedQuery", "Unsupported query: "+err.Error())
				return
			}
			dq.ids = ids
		}
		f.mu.Lock()
		now := f.snapshot(dq)
		var items []map[string]any
		if q.Get("$deltatoken") != "latest" {
			// delta-query-overview: the initial request returns the groups that exist, each in
			// full; "$deltaToken=latest" returns a deltaLink and no resource data.
			items = changes(&deltaState{groups: map[string]groupState{}, query: dq}, now, false)
		}
		f.mu.Unlock()
		f.deltaPage(w, r, &deltaPages{items: items, next: now})
	}
}

// deltaFilter reads the one $filter group-delta supports: id eq '<id>' joined by or, at most 50.
func deltaFilter(text string) (map[string]bool, error) {
	p, err := parseFilter(text)
	if err != nil {
		return nil, err
	}
	ids := map[string]bool{}
	var walk func(e expr) bool
	walk = func(e expr) bool {
		switch e := e.(type) {
		case orExpr:
			return walk(e.l) && walk(e.r)
		case cmpExpr:
			ids[strings.ToLower(e.value)] = true
			return e.prop == "id" && e.op == "eq"
		}
		return false
	}
	if !walk(p.e) {
		return nil, fmt.Errorf("delta supports only $filter=id eq '{id}' (joined by or)")
	}
	if len(ids) > maxDeltaFilterIDs {
		return nil, fmt.Errorf("at most %d ids may be filtered, got %d", maxDeltaFilterIDs, len(ids))
	}
	return ids, nil
}

// snapshot records the tracked groups now. Called with f.mu held.
func (f *Fake) snapshot(dq deltaQuery) *deltaState {
	s := &deltaState{issued: f.cfg.Now(), groups: map[string]groupState{}, query: dq}
	for id, g := range f.groups {
		if dq.ids != nil && !dq.ids[id] {
			continue
		}
		gs := groupState{displayName: g.displayName, mail: g.mail, members: map[string]string{}}
		for _, m := range g.members {
			m = strings.ToLower(m)
			if _, ok := f.groups[m]; ok {
				gs.members[m] = "#microsoft.graph.group"
			} else if o, ok := f.objects[m]; ok {
				gs.members[m] = o.typ
			}
		}
		s.groups[id] = gs
	}
	return s
}

// changes lists what changed from old to now, one item per changed group (delta-query-overview,
// resource representation): a new group in full, a removed one as id and @removed, a changed one
// with its selected properties (only the changed ones with Prefer: return=minimal, group-delta
// #response) and members@delta holding the members added and, with @removed, those removed.
// Changes to properties that were not selected do not show (delta-query-overview: "If a change
// occurs to a property that is not selected, the resource ... does not appear").
func changes(old, now *deltaState, minimal bool) []map[string]any {
	sel := func(p string) bool { return slices.Contains(now.query.props, p) }
	var items []map[string]any
	for _, id := range slices.Sorted(maps.Keys(now.groups)) {
		g := now.groups[id]
		prev, existed := old.groups[id]
		item := map[string]any{"id": id}
		changed := !existed
		for p, v := range map[string][2]string{"displayName": {prev.displayName, g.displayName}, "mail": {prev.mail, g.mail}} {
			if !sel(p) {
				continue
			}
			if differs := v[0] != v[1]; !existed || differs || !minimal {
				item[p] = nullable(v[1])
				changed = changed || differs
			}
		}
		if sel("members") {
			var md []map[string]any
			for _, m := range slices.Sorted(maps.Keys(g.members)) {
				if _, had := prev.members[m]; !had {
					md = append(md, map[string]any{"@odata.type": g.members[m], "id": m})
				}
			}
			for _, m := range slices.Sorted(maps.Keys(prev.members)) {
				if _, has := g.members[m]; !has {
					md = append(md, map[string]any{"@odata.type": prev.members[m], "id": m, "@removed": map[string]any{"reason": "deleted"}})
				}
			}
			// delta-query-groups: a group without members has no members@delta.
			if len(md) > 0 {
				item["members@delta"] = md
				changed = true
			}
		}
		if changed {
			items = append(items, item)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(old.groups)) {
		if _, ok := now.groups[id]; !ok {
			// delta-query-overview: "deleted indicates the item is deleted and cannot be
			// restored"; the fake does not model restorable (soft) deletion.
			items = append(items, map[string]any{"id": id, "@removed": map[string]any{"reason": "deleted"}})
		}
	}
	return items
}

// deltaPage writes the next page of a round: PageSize items and an @odata.nextLink with a fresh
// $skiptoken, or the last items and an @odata.deltaLink with a fresh $deltatoken.
func (f *Fake) deltaPage(w http.ResponseWriter, r *http.Request, rest *deltaPages) {
	n := min(len(rest.items), f.cfg.PageSize)
	body := map[string]any{"@odata.context": "http://" + r.Host + "/v1.0/$metadata#groups", "value": rest.items[:n]}
	if n == 0 {
		body["value"] = []any{}
	}
	tok := strings.ReplaceAll(newID()+newID(), "-", "")
	f.mu.Lock()
	if n < len(rest.items) {
		f.deltaPages[tok] = &deltaPages{items: rest.items[n:], next: rest.next}
		body["@odata.nextLink"] = "http://" + r.Host + "/v1.0/groups/delta?" + url.Values{"$skiptoken": {tok}}.Encode()
	} else {
		f.deltaTokens[tok] = rest.next
		body["@odata.deltaLink"] = "http://" + r.Host + "/v1.0/groups/delta?" + url.Values{"$deltatoken": {tok}}.Encode()
	}
	f.mu.Unlock()
	writeJSON(w, http.StatusOK, body)
}
