package oktafake

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"
)

// The System Log API, GET /api/v1/logs, as https://developer.okta.com/docs/reference/api/system-log/
// documents it, for polling requests only (since without until, sortOrder ASCENDING):
//   - parameters since, until, after, filter, q, sortOrder, limit; until, q and DESCENDING are refused
//     as not implemented by the fake (a bounded request, or keyword search);
//   - since is an RFC 3339 time, at most 180 days back; since and after are mutually exclusive;
//   - limit 0 to 1000, default 100;
//   - filter: `eventType eq "…"` joined by `or` (the fake's subset of the SCIM filter; other attributes
//     and operators are refused as not implemented), never `published`;
//   - events older than the 90-day retention are not returned;
//   - a polling request always has a next link, even when its page is empty.
//
// Events are recorded when the fake's groups and memberships change (AddGroup, RemoveGroup, AddMember,
// RemoveMember, a user's status change in AddUser), published at the fake's clock, and with AddLogEvent.

const (
	maxLogLimit     = 1000
	defaultLogLimit = 100
	logRetention    = 90 * 24 * time.Hour
	maxLogSince     = 180 * 24 * time.Hour
)

// Target is a target of a System Log event.
type Target struct{ ID, Type string }

type logEvent struct {
	uuid      string
	published time.Time
	eventType string
	target    []Target
}

// AddLogEvent records an event in the System Log, as if something in the org had happened.
func (s *Server) AddLogEvent(eventType string, target ...Target) {
	s.with(func() { s.logEvent(eventType, target...) })
}

// LogEventCount is how many events the System Log holds.
func (s *Server) LogEventCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.events)
}

// logEvent records an event; s.mu is held.
func (s *Server) logEvent(eventType string, target ...Target) {
	s.events = append(s.events, logEvent{uuid: randomHex(16), published: s.now(), eventType: eventType, target: target})
}

func groupTarget(id string) Target { return Target{ID: id, Type: "UserGroup"} }
func userTarget(id string) Target  { return Target{ID: id, Type: "User"} }

func (s *Server) listLogs(w http.ResponseWriter, r *http.Request, now time.Time) {
	q, ok := query(w, r, "since", "until", "after", "filter", "q", "sortOrder", "limit")
	if !ok {
		return
	}
	for _, k := range []string{"until", "q"} {
		if q.Has(k) {
			apiError(w, http.StatusBadRequest, "E0000001", "Api validation failed: "+k+" (not implemented by oktafake: polling requests only)")
			return
		}
	}
	if o := q.Get("sortOrder"); o != "" && o != "ASCENDING" {
		apiError(w, http.StatusBadRequest, "E0000001", "Api validation failed: sortOrder "+o+" (not implemented by oktafake: polling requests only)")
		return
	}
	n := defaultLogLimit
	if v := q.Get("limit"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 0 || n > maxLogLimit {
			apiError(w, http.StatusBadRequest, "E0000001", fmt.Sprintf("Api validation failed: limit must be between 0 and %d", maxLogLimit))
			return
		}
	}
	match, err := parseLogFilter(q.Get("filter"))
	if err != nil {
		apiError(w, http.StatusBadRequest, "E0000053", "Invalid filter '"+q.Get("filter")+"': "+err.Error())
		return
	}
	start := 0 // index of the first event to consider
	switch since, after := q.Get("since"), q.Get("after"); {
	case since != "" && after != "":
		apiError(w, http.StatusBadRequest, "E0000001", "Api validation failed: since and after are mutually exclusive")
		return
	case after != "":
		i := slices.IndexFunc(s.events, func(e logEvent) bool { return e.uuid == after })
		if i < 0 { // inference: Okta's after is opaque; one it did not make is refused
			apiError(w, http.StatusBadRequest, "E0000001", "Api validation failed: after")
			return
		}
		start = i + 1
	default:
		t := now.Add(-7 * 24 * time.Hour) // default: 7 days before until (now)
		if since != "" {
			if t, err = time.Parse(time.RFC3339, since); err != nil {
				apiError(w, http.StatusBadRequest, "E0000001", "Api validation failed: 'since': The date format in your query is not recognized. Please enter dates using ISO8601 string format.")
				return
			}
			if now.Sub(t) > maxLogSince {
				apiError(w, http.StatusBadRequest, "E0000053", "Invalid parameter: The since parameter is over 180 days prior to the current day.")
				return
			}
		}
		start = len(s.events)
		for i, e := range s.events { // events are stored in persistence order
			if !e.published.Before(t) {
				start = i
				break
			}
		}
	}
	if s.pageSize > 0 && s.pageSize < n {
		n = s.pageSize
	}
	out := []logEventJSON{}
	last := ""
	for _, e := range s.events[start:] {
		if len(out) == n {
			break
		}
		if match(e.eventType) && now.Sub(e.published) <= logRetention {
			out = append(out, eventJSON(e))
		}
		last = e.uuid
	}
	// A polling request always has a next link. After events it continues after the last one looked at;
	// after none it repeats the request (inference: the position has not moved).
	next := maps.Clone(q)
	if last != "" {
		next.Del("since")
		next.Set("after", last)
	}
	s.writeLinked(w, r, q, next, out)
}

type logEventJSON struct {
	UUID      string `json:"uuid"`
	Published string `json:"published"`
	EventType string `json:"eventType"`
	Version   string `json:"version"`
	Severity  string `json:"severity"`
	Actor     struct {
		ID   string `json:"id"`
		Type string `json:"type"`
	} `json:"actor"`
	Outcome struct {
		Result string `json:"result"`
	} `json:"outcome"`
	Target []targetJSON `json:"target"`
}

type targetJSON struct {
	ID   string `json:"id"`
	Type string `json:"type"`
}

func eventJSON(e logEvent) logEventJSON {
	out := logEventJSON{UUID: e.uuid, Published: stamp(e.published), EventType: e.eventType, Version: "0", Severity: "INFO"}
	out.Actor.ID, out.Actor.Type = "00uadmin", "User"
	out.Outcome.Result = "SUCCESS"
	out.Target = []targetJSON{}
	for _, t := range e.target {
		out.Target = append(out.Target, targetJSON(t))
	}
	return out
}

// parseLogFilter parses the fake's subset of System Log filters: empty, or `eventType eq "…"` terms
// joined by `or`.
func parseLogFilter(expr string) (func(eventType string) bool, error) {
	if expr == "" {
		return func(string) bool { return true }, nil
	}
	toks, err := tokenize(expr)
	if err != nil {
		return nil, err
	}
	types := map[string]bool{}
	for i := 0; ; i += 4 {
		if len(toks) < i+3 {
			return nil, errors.New("expected eventType eq \"…\"")
		}
		attr, op, val := toks[i], toks[i+1], toks[i+2]
		switch {
		case attr.quoted || op.quoted:
			return nil, fmt.Errorf("unexpected %q", attr.text)
		case attr.text == "published": // Okta: filters can't use published, which since/until/after decide
			return nil, errors.New("published cannot be filtered on; use since")
		case attr.text != "eventType" || op.text != "eq" || !val.quoted:
			return nil, fmt.Errorf("%s %s (not implemented by oktafake: eventType eq only)", attr.text, op.text)
		}
		types[val.text] = true
		switch {
		case len(toks) == i+3:
			return func(t string) bool { return types[t] }, nil
		case toks[i+3].quoted || toks[i+3].text != "or":
			return nil, fmt.Errorf("%q (not implemented by oktafake: or only)", toks[i+3].text)
		}
	}
}

// writeLinked answers with body, a self link and, when next is not nil, a next link, each its own Link
// header as Okta sends them.
func (s *Server) writeLinked(w http.ResponseWriter, r *http.Request, self, next url.Values, body any) {
	base := s.linkBase
	if base == "" {
		base = "https://" + r.Host
	}
	w.Header().Add("Link", fmt.Sprintf(`<%s%s?%s>; rel="self"`, base, r.URL.Path, self.Encode()))
	if next != nil {
		w.Header().Add("Link", fmt.Sprintf(`<%s%s?%s>; rel="next"`, base, r.URL.Path, next.Encode()))
	}
	writeJSON(w, http.StatusOK, body)
}
