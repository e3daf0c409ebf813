package entra

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// DeltaCursor is the name under which Delta stores its delta link, followed by the tenant.
const DeltaCursor = "entra/groups-delta/"

// CursorStore keeps a cursor between runs: the daemon's state. A lost cursor costs a full read.
type CursorStore interface {
	Cursor(ctx context.Context, name string) (string, error)
	SetCursor(ctx context.Context, name, value string) error
}

// Changes is what a catch-up found.
type Changes struct {
	// Groups are the ids of the selected groups to read again, sorted: those that changed, those
	// containing a nested group that changed, and (with a filter) new or renamed groups that may
	// match it now.
	Groups []string
	// Full is set when the changes cannot be told: every group must be read (Reason says why).
	Full   bool
	Reason string
}

// Delta catches up on changes to groups with Graph's delta query (GET /groups/delta), keeping its
// delta link in a CursorStore, as Graph's lifecycle-notification page recommends after missed
// notifications (learn.microsoft.com/graph/change-notifications-lifecycle-events). It needs no
// permission beyond the reader's (group-delta: GroupMember.Read.All). It is safe for concurrent use;
// catch-ups run one at a time.
//
// Graph's delta on groups can only be narrowed by id ($filter=id eq, at most 50), and changes in
// nested groups matter too, so it tracks every group of the tenant ($select=displayName,members)
// and keeps those that concern the selection. Users' own changes (disabled, new address) are not
// group changes: the schedule's full read picks them up.
type Delta struct {
	src   *Source
	store CursorStore
	name  string
	mu    lock
}

// NewDelta returns the catch-up of src, which stores its delta link in store.
func NewDelta(src *Source, store CursorStore) *Delta {
	return &Delta{src: src, store: store, name: DeltaCursor + strings.ToLower(src.tenant), mu: make(lock, 1)}
}

// deltaStart is the first request of a round. $deltatoken=latest starts from now without reading
// any group (delta-query-overview: "sync from now" for directory resources): the full read that
// follows is cheaper than a delta round over every group of the tenant.
func (d *Delta) deltaStart() string {
	return d.src.endpoint("/v1.0/groups/delta", url.Values{"$select": {"displayName,members"}, "$deltatoken": {"latest"}})
}

// Changed returns what changed since the last call and stores the new delta link. Before the
// source's first full read (Groups) it returns nothing and keeps the link. Without a stored
// link, or when Graph no longer knows it (410 Gone, syncStateNotFound, resyncRequired: seven days
// unused, or a reset), it starts a new one and answers Full: the link predates the full read the
// caller then makes, so nothing falls between the two.
func (d *Delta) Changed(ctx context.Context) (Changes, error) {
	if err := d.mu.acquire(ctx); err != nil {
		return Changes{}, err
	}
	defer d.mu.release()
	link, err := d.store.Cursor(ctx, d.name)
	if err != nil {
		return Changes{}, fmt.Errorf("entra: loading the stored delta link: %w", err)
	}
	reason := ""
	switch {
	case link == "":
		reason = "no delta link stored yet"
	case d.src.checkLink("@odata.deltaLink", link) != nil:
		reason = "the stored delta link is not under the Graph URL (the configuration changed)"
	case !d.src.fullyRead.Load():
		// Which groups are selected and nested is not known before the first full read, which is
		// due (the daemon reads everything first) and covers every change until it reads a group.
		// The link is kept: the next catch-up replays from it, with the selection known.
		return Changes{}, nil
	default:
		ids, next, err := d.round(ctx, link)
		switch {
		case resyncRequired(err):
			reason = "graph no longer knows the delta link (" + err.Error() + ")"
		case err != nil:
			return Changes{}, d.fail(err)
		default:
			if err := d.save(ctx, next); err != nil {
				return Changes{}, err
			}
			return Changes{Groups: ids}, nil
		}
	}
	_, next, err := d.round(ctx, d.deltaStart())
	if err != nil {
		return Changes{}, d.fail(err)
	}
	if err := d.save(ctx, next); err != nil {
		return Changes{}, err
	}
	return Changes{Full: true, Reason: reason}, nil
}

func (d *Delta) fail(err error) error {
	if statusIs(err, http.StatusForbidden) {
		err = fmt.Errorf("%w (group-delta needs GroupMember.Read.All, or Group.Read.All or Directory.Read.All)", err)
	}
	return fmt.Errorf("entra: catching up on group changes (GET /groups/delta): %w", err)
}

func (d *Delta) save(ctx context.Context, link string) error {
	if err := d.store.SetCursor(ctx, d.name, link); err != nil {
		return fmt.Errorf("entra: storing the delta link: %w", err)
	}
	return nil
}

// resyncRequired reports whether Graph answered that the delta link is gone: 410 Gone
// (delta-query-overview#synchronization-reset) or the codes syncStateNotFound and resyncRequired
// (learn.microsoft.com/graph/errors#code-property), which Graph has sent in either case.
func resyncRequired(err error) bool {
	var ae *apiError
	if !errors.As(err, &ae) {
		return false
	}
	return ae.status == http.StatusGone || ae.status >= 400 && ae.status < 500 &&
		(strings.EqualFold(ae.code, "syncStateNotFound") || strings.EqualFold(ae.code, "resyncRequired"))
}

// round follows a delta round from link to its @odata.deltaLink and returns the ids of the selected
// groups its changes concern, and that delta link. Every link must be under the Graph URL.
func (d *Delta) round(ctx context.Context, link string) ([]string, string, error) {
	found := map[string]bool{}
	for n := 0; n < maxPages; n++ {
		var raw json.RawMessage
		if err := d.src.call(ctx, http.MethodGet, link, nil, &raw, minimalReturn); err != nil {
			return nil, "", err
		}
		p, err := decodeDeltaPage(raw)
		if err != nil {
			return nil, "", err
		}
		for _, g := range p.Value {
			for _, id := range d.src.concerns(g) {
				found[id] = true
			}
		}
		if p.DeltaLink != "" {
			if err := d.src.checkLink("@odata.deltaLink", p.DeltaLink); err != nil {
				return nil, "", err
			}
			ids := make([]string, 0, len(found))
			for id := range found {
				ids = append(ids, id)
			}
			slices.Sort(ids)
			return ids, p.DeltaLink, nil
		}
		if p.NextLink == link {
			return nil, "", errors.New("the @odata.nextLink repeats the page it is on")
		}
		if err := d.src.checkLink("@odata.nextLink", p.NextLink); err != nil {
			return nil, "", err
		}
		link = p.NextLink
	}
	return nil, "", fmt.Errorf("more than %d pages", maxPages)
}

// deltaGroup is a group in a delta page: id, and with Prefer: return=minimal only what changed
// (group-delta#response). A removed group carries @removed; members@delta lists the members added
// and, with @removed, those removed (delta-query-groups).
type deltaGroup struct {
	ID          string          `json:"id"`
	DisplayName json.RawMessage `json:"displayName"` // present when new or renamed
	Removed     json.RawMessage `json:"@removed"`
	Members     []struct {
		Type string `json:"@odata.type"`
		ID   string `json:"id"`
	} `json:"members@delta"`
}

// deltaPage is one page of a delta round: more to read at NextLink, or the round's end at DeltaLink.
type deltaPage struct {
	Value     []deltaGroup `json:"value"`
	NextLink  string       `json:"@odata.nextLink"`
	DeltaLink string       `json:"@odata.deltaLink"`
}

// decodeDeltaPage reads a delta page: it has exactly one of the two links, and every group an id.
func decodeDeltaPage(raw []byte) (deltaPage, error) {
	var p deltaPage
	if err := json.Unmarshal(raw, &p); err != nil {
		return deltaPage{}, fmt.Errorf("decoding a delta page: %w", err)
	}
	if (p.NextLink == "") == (p.DeltaLink == "") {
		return deltaPage{}, errors.New("a delta page has neither or both of @odata.nextLink and @odata.deltaLink")
	}
	for _, g := range p.Value {
		if !isGUID(g.ID) {
			return deltaPage{}, fmt.Errorf("a delta page lists a group with the invalid id %.40q", g.ID)
		}
	}
	return p, nil
}

// concerns are the selected groups a changed group concerns: itself when it was selected when read
// last or is among GroupIDs, the selected groups it is nested in, and, when a filter selects the
// groups, itself when it is new or renamed (it may match the filter now; Group asks Graph). A
// change only to the members of a group that is neither selected nor nested concerns none.
func (s *Source) concerns(g deltaGroup) []string {
	id := strings.ToLower(g.ID)
	out := s.Containing(id)
	s.nestedMu.Lock()
	_, read := s.nested[id]
	s.nestedMu.Unlock()
	if read || s.idSet[id] || s.filter != "" && len(g.DisplayName) > 0 && g.Removed == nil {
		out = append(out, id)
	}
	return out
}
