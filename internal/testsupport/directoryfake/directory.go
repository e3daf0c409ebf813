package directoryfake

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// The system parameters every Google API accepts (those that make sense for JSON over GET).
var systemParams = []string{"fields", "prettyPrint", "quotaUser", "alt"}

// checkParams refuses parameters the method does not define, as Google's front end does.
func checkParams(w http.ResponseWriter, r *http.Request, allowed ...string) bool {
	for name := range r.URL.Query() {
		if !slices.Contains(allowed, name) && !slices.Contains(systemParams, name) {
			apiErr(w, http.StatusBadRequest, "invalid", fmt.Sprintf(
				"Invalid JSON payload received. Unknown name %q: Cannot bind query parameter. Field %q could not be found in request message.", name, name))
			return false
		}
	}
	if alt := r.URL.Query().Get("alt"); alt != "" && alt != "json" {
		apiErr(w, http.StatusBadRequest, "invalid", "Invalid value for alt: "+alt)
		return false
	}
	return true
}

// maxResults reads maxResults: [1, 200], 200 when absent.
func maxResults(w http.ResponseWriter, r *http.Request) (int, bool) {
	v := r.URL.Query().Get("maxResults")
	if v == "" {
		return maxResultsLimit, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxResultsLimit {
		apiErr(w, http.StatusBadRequest, "invalid",
			fmt.Sprintf("Invalid value '%s'. Values must be within the range: [1, %d]", v, maxResultsLimit))
		return 0, false
	}
	return n, true
}

func (s *Server) listGroups(w http.ResponseWriter, r *http.Request) {
	if !s.authorize(w, r, groupScopes...) ||
		!checkParams(w, r, "customer", "domain", "maxResults", "orderBy", "pageToken", "query", "sortOrder", "userKey") {
		return
	}
	q := r.URL.Query()
	limit, ok := maxResults(w, r)
	if !ok {
		return
	}
	if q.Get("userKey") != "" {
		apiErr(w, http.StatusNotImplemented, "notImplemented", "directoryfake: userKey is not implemented")
		return
	}
	customer, domain := q.Get("customer"), q.Get("domain")
	switch {
	case customer == "" && domain == "":
		apiErr(w, http.StatusBadRequest, "badRequest", "Bad Request")
		return
	case customer != "" && customer != "my_customer" && customer != s.customerID:
		apiErr(w, http.StatusForbidden, "forbidden", "Not Authorized to access this resource/api")
		return
	}
	if ob := q.Get("orderBy"); ob != "" && !strings.EqualFold(ob, "email") {
		apiErr(w, http.StatusBadRequest, "invalid", "Invalid value for orderBy: "+ob)
		return
	}
	so := q.Get("sortOrder")
	if so != "" && so != "ASCENDING" && so != "DESCENDING" {
		apiErr(w, http.StatusBadRequest, "invalid", "Invalid value for sortOrder: "+so)
		return
	}
	match, err := parseQuery(q.Get("query"))
	if err != nil {
		apiErr(w, http.StatusBadRequest, "invalid", "Invalid Input: "+err.Error())
		return
	}
	s.mu.Lock()
	var hits []Group
	for _, g := range s.groups {
		if (domain == "" || strings.HasSuffix(strings.ToLower(g.Email), "@"+strings.ToLower(domain))) && match(g) {
			hits = append(hits, g)
		}
	}
	s.mu.Unlock()
	// Google lists groups in email order.
	slices.SortFunc(hits, func(a, b Group) int { return strings.Compare(strings.ToLower(a.Email), strings.ToLower(b.Email)) })
	if so == "DESCENDING" {
		slices.Reverse(hits)
	}
	listing := strings.Join([]string{"groups", customer, domain, q.Get("query"), q.Get("orderBy"), so}, "\x00")
	page, next, ok := s.page(w, q.Get("pageToken"), listing, len(hits), limit)
	if !ok {
		return
	}
	out := make([]map[string]any, 0, page[1]-page[0])
	for _, g := range hits[page[0]:page[1]] {
		out = append(out, s.groupResource(g))
	}
	body := map[string]any{"kind": "admin#directory#groups", "etag": `"fake"`, "groups": out}
	if next != "" {
		body["nextPageToken"] = next
	}
	writeJSON(w, http.StatusOK, body)
}

func (s *Server) getGroup(w http.ResponseWriter, r *http.Request) {
	if !s.authorize(w, r, groupScopes...) || !checkParams(w, r) {
		return
	}
	s.mu.Lock()
	g, ok := s.findGroup(r.PathValue("groupKey"))
	s.mu.Unlock()
	if !ok {
		apiErr(w, http.StatusNotFound, "notFound", "Resource Not Found: groupKey")
		return
	}
	writeJSON(w, http.StatusOK, s.groupResource(g))
}

func (s *Server) listMembers(w http.ResponseWriter, r *http.Request) {
	if !s.authorize(w, r, memberScopes...) ||
		!checkParams(w, r, "includeDerivedMembership", "maxResults", "pageToken", "roles") {
		return
	}
	q := r.URL.Query()
	limit, ok := maxResults(w, r)
	if !ok {
		return
	}
	derived := false
	if v := q.Get("includeDerivedMembership"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil || (v != "true" && v != "false") {
			apiErr(w, http.StatusBadRequest, "invalid", "Invalid value for includeDerivedMembership: "+v)
			return
		}
		derived = b
	}
	roles := map[string]bool{}
	if v := q.Get("roles"); v != "" {
		for _, role := range strings.Split(v, ",") {
			if role != "OWNER" && role != "MANAGER" && role != "MEMBER" {
				apiErr(w, http.StatusBadRequest, "invalid", "Invalid value for roles: "+role)
				return
			}
			roles[role] = true
		}
	}
	s.mu.Lock()
	g, found := s.findGroup(r.PathValue("groupKey"))
	var list []Member
	if found {
		list = s.collect(g.ID, derived, map[string]bool{g.ID: true}, map[string]bool{})
	}
	s.mu.Unlock()
	if !found {
		apiErr(w, http.StatusNotFound, "notFound", "Resource Not Found: groupKey")
		return
	}
	if len(roles) > 0 {
		list = slices.DeleteFunc(list, func(m Member) bool { return !roles[m.Role] })
	}
	listing := strings.Join([]string{"members", g.ID, strconv.FormatBool(derived), q.Get("roles")}, "\x00")
	page, next, ok := s.page(w, q.Get("pageToken"), listing, len(list), limit)
	if !ok {
		return
	}
	out := make([]map[string]any, 0, page[1]-page[0])
	for _, m := range list[page[0]:page[1]] {
		res := map[string]any{"kind": "admin#directory#member", "etag": `"fake"`, "id": m.ID, "role": m.Role, "type": m.Type}
		if m.Type != TypeCustomer { // a CUSTOMER member has no email; its id is the customer ID
			res["email"] = m.Email
		}
		if m.Status != "" {
			res["status"] = m.Status
		}
		out = append(out, res)
	}
	body := map[string]any{"kind": "admin#directory#members", "etag": `"fake"`, "members": out}
	if next != "" {
		body["nextPageToken"] = next
	}
	writeJSON(w, http.StatusOK, body)
}

// collect returns a group's direct members and, when derived, those of nested groups after them, each
// member once. Caller holds s.mu.
func (s *Server) collect(groupID string, derived bool, visiting, seen map[string]bool) []Member {
	var out []Member
	for _, m := range s.members[groupID] {
		if !seen[m.ID] {
			seen[m.ID] = true
			out = append(out, m)
		}
	}
	if !derived {
		return out
	}
	for _, m := range s.members[groupID] {
		if m.Type != TypeGroup {
			continue
		}
		if ng, ok := s.findGroup(cmp.Or(m.Email, m.ID)); ok && !visiting[ng.ID] {
			visiting[ng.ID] = true
			out = append(out, s.collect(ng.ID, true, visiting, seen)...)
		}
	}
	return out
}

// findGroup resolves a groupKey: the group's ID or its email. Caller holds s.mu.
func (s *Server) findGroup(key string) (Group, bool) {
	for _, g := range s.groups {
		if g.ID == key || strings.EqualFold(g.Email, key) {
			return g, true
		}
	}
	return Group{}, false
}

func (s *Server) groupResource(g Group) map[string]any {
	s.mu.Lock()
	n := len(s.members[g.ID])
	s.mu.Unlock()
	return map[string]any{
		"kind": "admin#directory#group", "etag": `"fake"`, "id": g.ID, "email": g.Email, "name": g.Name,
		"description": "", "adminCreated": true, "directMembersCount": strconv.Itoa(n),
	}
}

type pageToken struct {
	Listing string `json:"l"`
	Offset  int    `json:"o"`
}

// page picks the slice [from, to) of a listing of n items for the request's pageToken and returns the
// token of the next page. A token only works for the listing (same parameters) that issued it.
func (s *Server) page(w http.ResponseWriter, token, listing string, n, limit int) ([2]int, string, bool) {
	from := 0
	if token != "" {
		var pt pageToken
		b, err := base64.RawURLEncoding.DecodeString(token)
		if err != nil || json.Unmarshal(b, &pt) != nil || pt.Listing != listing || pt.Offset < 0 {
			apiErr(w, http.StatusBadRequest, "invalid", "Invalid Input: pageToken")
			return [2]int{}, "", false
		}
		from = min(pt.Offset, n)
	}
	if s.pageSize > 0 {
		limit = min(limit, s.pageSize)
	}
	to := min(from+limit, n)
	next := ""
	if to < n {
		b, _ := json.Marshal(pageToken{Listing: listing, Offset: to})
		next = base64.RawURLEncoding.EncodeToString(b)
	}
	return [2]int{from, to}, next, true
}
