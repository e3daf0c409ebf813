package statuspage

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/byob-agent/byob-agent/metrics"
	"github.com/byob-agent/byob-agent/state"
)

// maxQuery bounds the search box.
const maxQuery = 200

// Header is what every authorized page shows above its content.
type Header struct {
	Status
	Now    time.Time
	Counts []count // teams by status, in metrics.TeamStatuses order
	Chart  chart
}

type count struct {
	Status string
	N      int
}

type listView struct {
	Header
	Teams   []state.Record
	Total   int
	Sources []string // every source of a team in the state, for the filter
	Filter  filter
}

type filter struct {
	Status, Source, Query string
}

type teamView struct {
	Header
	Team    *state.Record
	History []state.Event // newest first
}

type loginView struct {
	Error string
}

type errorView struct {
	Message string
}

// parseFilter reads the list's query parameters: status (one of the statuses or empty), source
// (matched exactly), q (a substring of the name, profile, bucket, path, W&B id or last error).
func parseFilter(r *http.Request) (filter, error) {
	q := r.URL.Query()
	f := filter{Status: q.Get("status"), Source: q.Get("source"), Query: strings.TrimSpace(q.Get("q"))}
	if f.Status != "" && !slices.Contains(metrics.TeamStatuses, f.Status) {
		return f, fmt.Errorf("status %q is not one of %s", f.Status, strings.Join(metrics.TeamStatuses, ", "))
	}
	if len(f.Query) > maxQuery || len(f.Source) > maxQuery {
		return f, fmt.Errorf("the search and source are limited to %d bytes", maxQuery)
	}
	return f, nil
}

func (f filter) match(r *state.Record) bool {
	if f.Status != "" && r.Status() != f.Status || f.Source != "" && r.Source != f.Source {
		return false
	}
	if f.Query == "" {
		return true
	}
	q := strings.ToLower(f.Query)
	for _, s := range []string{r.Name, r.Profile, r.Storage.Bucket, r.Storage.Path, r.GroupID, r.LastError, r.Conflict} {
		if strings.Contains(strings.ToLower(s), q) {
			return true
		}
	}
	return false
}

func (p *page) list(w http.ResponseWriter, r *http.Request) {
	f, err := parseFilter(r)
	if err != nil {
		p.render(w, http.StatusBadRequest, "error", errorView{Message: err.Error()})
		return
	}
	recs, err := p.o.Store.List(r.Context())
	if err != nil {
		p.fail(w, "read the state", err)
		return
	}
	v := listView{Header: p.header(recs), Total: len(recs), Filter: f}
	for i := range recs {
		if rec := &recs[i]; f.match(rec) {
			v.Teams = append(v.Teams, *rec)
		}
		if s := recs[i].Source; s != "" && !slices.Contains(v.Sources, s) {
			v.Sources = append(v.Sources, s)
		}
	}
	slices.Sort(v.Sources)
	p.render(w, http.StatusOK, "list", v)
}

func (p *page) team(w http.ResponseWriter, r *http.Request) {
	rec, err := p.o.Store.Get(r.Context(), r.PathValue("name"))
	if errors.Is(err, state.ErrNotFound) {
		p.render(w, http.StatusNotFound, "error", errorView{Message: "No team of that name is in the state."})
		return
	}
	if err != nil {
		p.fail(w, "read the state", err)
		return
	}
	recs, err := p.o.Store.List(r.Context())
	if err != nil {
		p.fail(w, "read the state", err)
		return
	}
	v := teamView{Header: p.header(recs), Team: &rec, History: slices.Clone(rec.History)}
	slices.Reverse(v.History)
	p.render(w, http.StatusOK, "team", v)
}

func (p *page) header(recs []state.Record) Header {
	h := Header{Status: p.o.Status(), Now: p.now()}
	n := map[string]int{}
	for i := range recs {
		n[recs[i].Status()]++
	}
	for _, s := range metrics.TeamStatuses {
		h.Counts = append(h.Counts, count{Status: s, N: n[s]})
	}
	h.Chart = durationChart(h.Reconciles)
	return h
}

// fail answers 500 without the error's text, which is logged.
func (p *page) fail(w http.ResponseWriter, what string, err error) {
	p.log().Error("status page: "+what, "error", err)
	p.render(w, http.StatusInternalServerError, "error", errorView{Message: "The page could not " + what + "; the daemon's log says why."})
}

// render executes a page into a buffer first, so that a template error never sends half a page.
func (p *page) render(w http.ResponseWriter, code int, name string, data any) {
	var b bytes.Buffer
	if err := p.tmpl[name].ExecuteTemplate(&b, "page", data); err != nil {
		p.log().Error("status page: render", "page", name, "error", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	w.Write(b.Bytes())
}

var funcs = template.FuncMap{
	"when": func(t, now time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC") + " (" + ago(now.Sub(t)) + ")"
	},
	"clock": func(t time.Time) string { return t.UTC().Format("15:04:05") },
	// since is the short form of when, for tables; stamp is the full time, for its tooltip.
	"since": func(t, now time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return ago(now.Sub(t))
	},
	"stamp":    func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"contains": strings.Contains,
	"percent":  func(f float64) string { return fmt.Sprintf("%.0f%%", f*100) },
	"seconds":  func(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) },
}

// ago says how long ago (or, negative, in how long) something is, roughly.
func ago(d time.Duration) string {
	suffix := "ago"
	if d < 0 {
		d, suffix = -d, "from now"
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds %s", int(d.Seconds()), suffix)
	case d < time.Hour:
		return fmt.Sprintf("%dm %s", int(d.Minutes()), suffix)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh %s", int(d.Hours()), suffix)
	}
	return fmt.Sprintf("%dd %s", int(d.Hours()/24), suffix)
}

// parseTemplates makes one template set per page, each the layout plus the page's own file.
func parseTemplates() (map[string]*template.Template, error) {
	out := map[string]*template.Template{}
	for _, name := range []string{"list", "team", "login", "error"} {
		t, err := template.New(name).Funcs(funcs).ParseFS(assets, "assets/layout.html", "assets/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("status page: parse %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}
