package okta

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/byob-agent/byob-agent/sync/queuekey"
)

// The System Log catch-up. Event hooks are best effort (one retry, a daily cap), so the daemon also polls
// GET /api/v1/logs for the event types of EventTypes and enqueues the keys the hook would have. It reads
// with a polling request as Okta defines one (since without until, sortOrder ASCENDING: events are
// filtered by the time Okta stored them, so a delayed event is not skipped) and follows the next links,
// which a polling request always has, until a page comes back empty; that page's next link is the cursor
// (https://developer.okta.com/docs/reference/api/system-log/#polling-requests; Okta asks clients to
// follow the next links rather than page by since/until, which may skip or repeat events).
const (
	// CursorName is the name the poller keeps its position under in the CursorStore.
	CursorName = "okta:systemlog"
	// logPageLimit is the largest page Okta serves (limit: 0 to 1000).
	logPageLimit = 1000
	// maxLogPages bounds one poll; the rest waits for the next poll, from the stored cursor.
	maxLogPages = 50
	// firstOverlap: a poll without a cursor starts this long before now, to cover clock skew between
	// the agent and Okta. Earlier changes are the full reconcile's, which the daemon runs at start.
	firstOverlap = 2 * time.Minute
	logsPath     = "/api/v1/logs"
)

// logsForbiddenFix is what a 403 from the System Log needs. Inference: Okta's Read-Only Administrator
// role can view the System Log, as it can the groups.
const logsForbiddenFix = `the System Log needs an admin role that can read it (Read-Only Administrator can) ` +
	`for the API token's admin or the service app, and the okta.logs.read scope for the service app`

// CursorStore keeps the poller's position across polls and restarts (the daemon's state). A lost
// cursor costs one full reconcile, never a change.
type CursorStore interface {
	Cursor(ctx context.Context, name string) (string, error)
	SetCursor(ctx context.Context, name, value string) error
}

// LogPoller reads the System Log from where it last left off. Poll must not run concurrently with
// itself.
type LogPoller struct {
	s      *Source
	store  CursorStore
	oauth  *tokenSource // tokens with okta.logs.read only; nil with an API token
	filter string
}

// LogPoller returns the System Log poller of the source's org, keeping its cursor in store. With OAuth
// it asks for okta.logs.read in a token of its own: a service app without that scope still reads groups.
func (s *Source) LogPoller(store CursorStore) *LogPoller {
	p := &LogPoller{s: s, store: store, filter: eventFilter()}
	if s.oauth != nil {
		p.oauth = s.oauth.withScope(logsScope, func() time.Time { return s.now() })
	}
	return p
}

// Poll reads the events since the stored cursor, hands each distinct key they ask for to enqueue
// (queuekey.All alone when one asks for everything), then stores the new cursor: keys are enqueued
// before the position moves past them. Without a usable cursor it starts from now; when a stored cursor
// cannot be used (another org, another filter, or Okta refuses it) it also enqueues queuekey.All, for
// what may have been missed. It returns how many events it read. After an error it still enqueues the
// keys and stores the position of the pages it read.
func (p *LogPoller) Poll(ctx context.Context, enqueue func(queuekey.Key)) (int, error) {
	stored, err := p.store.Cursor(ctx, CursorName)
	if err != nil {
		return 0, fmt.Errorf("okta: System Log catch-up: reading the cursor: %w", err)
	}
	var keys queuekey.Set
	u, resumed := p.resume(stored)
	if !resumed {
		if stored != "" {
			keys.Add(queuekey.All) // for what the unusable cursor's events would have said
		}
		u = p.fresh()
	}
	var cursor string
	events := 0
	for range maxLogPages {
		var page []LogEvent
		var next *url.URL
		page, next, err = p.page(ctx, u)
		var ae *APIError
		if resumed && cursor == "" && errors.As(err, &ae) && ae.Status == http.StatusBadRequest {
			// Okta refused the stored position (expired, say): start again from now.
			keys.Add(queuekey.All)
			u, resumed = p.fresh(), false
			page, next, err = p.page(ctx, u)
		}
		if err != nil {
			break
		}
		events += len(page)
		for _, e := range page {
			if k, ok := EventKey(e); ok {
				keys.Add(k)
			}
		}
		cursor = next.String()
		if len(page) == 0 {
			break // caught up: the empty page's next link is where the next poll starts
		}
		u = next
	}
	for _, k := range keys.List() {
		enqueue(k)
	}
	if cursor != "" {
		if serr := p.store.SetCursor(ctx, CursorName, cursor); serr != nil {
			err = errors.Join(err, fmt.Errorf("storing the cursor: %w", serr))
		}
	}
	if err != nil {
		return events, p.explain(err)
	}
	return events, nil
}

// page reads one page of events and its next link, which must stay in the org.
func (p *LogPoller) page(ctx context.Context, u *url.URL) ([]LogEvent, *url.URL, error) {
	resp, err := p.s.getWith(ctx, u, p.oauth)
	if err != nil {
		return nil, nil, err
	}
	page, err := decodeLogPage(resp.body)
	if err != nil {
		return nil, nil, err
	}
	link, ok := nextLink(resp.header.Values("Link"))
	if !ok {
		return nil, nil, errors.New("okta's System Log answer has no next link, which a polling request always has")
	}
	next, err := p.s.follow(u, link)
	if err != nil {
		return nil, nil, err
	}
	return page, next, nil
}

// resume checks a stored cursor: a System Log link of this org, for this poller's filter. A link
// without a filter is used as it is: the events are still mapped by type.
func (p *LogPoller) resume(stored string) (*url.URL, bool) {
	if stored == "" {
		return nil, false
	}
	u, err := p.s.follow(p.s.base, stored)
	if err != nil || u.Path != logsPath {
		return nil, false
	}
	q := u.Query()
	if q.Has("until") || (q.Has("filter") && q.Get("filter") != p.filter) || (q.Has("sortOrder") && q.Get("sortOrder") != "ASCENDING") {
		return nil, false
	}
	return u, true
}

// fresh is a polling request from a little before now.
func (p *LogPoller) fresh() *url.URL {
	u := p.s.base.JoinPath(logsPath)
	u.RawQuery = url.Values{
		"since":     {p.s.now().Add(-firstOverlap).UTC().Format("2006-01-02T15:04:05.000Z")},
		"filter":    {p.filter},
		"sortOrder": {"ASCENDING"},
		"limit":     {strconv.Itoa(logPageLimit)},
	}.Encode()
	return u
}

// explain says what an error means for the catch-up: an answer that retrying will not change (a
// missing scope or role, a refused request) turns it off until fixed, which the message says.
func (p *LogPoller) explain(err error) error {
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status < 400 || ae.Status >= 500 || ae.Status == http.StatusTooManyRequests {
		return fmt.Errorf("okta: System Log catch-up: %w", err)
	}
	if ae.Status == http.StatusForbidden && ae.hint == "" {
		ae.hint = logsForbiddenFix
	}
	return fmt.Errorf("okta: System Log catch-up is off until this is fixed (the schedule and event hooks still read groups): %w", err)
}

// decodeLogPage decodes one page of the System Log: a JSON array of LogEvents.
func decodeLogPage(body []byte) ([]LogEvent, error) {
	var page []LogEvent
	if err := json.Unmarshal(body, &page); err != nil {
		return nil, fmt.Errorf("decoding System Log events: %w", err)
	}
	return page, nil
}
