package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"

	"github.com/byob-agent/byob-agent/bucketfactory"
	"github.com/byob-agent/byob-agent/config"
	"github.com/byob-agent/byob-agent/internal/transport"
	"github.com/byob-agent/byob-agent/scim/wandb"
	"github.com/byob-agent/byob-agent/state"
	"github.com/byob-agent/byob-agent/sync/apply"
	"github.com/byob-agent/byob-agent/team"
)

// doctorReport is one team's checks.
type doctorReport struct {
	Team     string                      `json:"team"`
	Provider string                      `json:"provider"`
	Bucket   string                      `json:"bucket"`
	Path     string                      `json:"path,omitempty"`
	OK       bool                        `json:"ok"`
	Checks   []bucketfactory.CheckResult `json:"checks"`
	Error    string                      `json:"error,omitempty"` // the checks could not run
}

// cmdDoctor checks every recorded team's bucket (or the named ones) against W&B's requirements,
// including a probe object, and prints what passed, what failed and how to fix it.
func cmdDoctor(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	g, names, err := parse("doctor", args, stderr)
	if err != nil {
		return err
	}
	a, err := openAgentState(ctx, g, stderr, state.Options{ReadOnly: true})
	if err != nil {
		return err
	}
	defer a.db.Close()
	recs, err := a.db.List(ctx)
	if err != nil {
		return err
	}
	recs, err = selectRecords(recs, names)
	if err != nil {
		return err
	}
	w := a.doctorWandb(ctx)
	idps, err := a.doctorIdPs(ctx)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	reports := make([]doctorReport, len(recs))
	sem := make(chan struct{}, max(a.cfg.Sync.Concurrency, 1))
	var wg sync.WaitGroup
	for i, r := range recs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			reports[i] = a.doctor(ctx, r)
		}()
	}
	wg.Wait()

	failed, idpsFailed := 0, 0
	for _, r := range reports {
		if !r.OK {
			failed++
		}
	}
	for _, r := range idps {
		if !r.OK {
			idpsFailed++
		}
	}
	if g.json {
		if err := writeJSON(stdout, struct {
			Wandb wandbReport    `json:"wandb"`
			IdPs  []idpReport    `json:"idps,omitempty"`
			Teams []doctorReport `json:"teams"`
		}{w, idps, reports}); err != nil {
			return err
		}
	} else {
		printWandb(stdout, w)
		printIdPs(stdout, idps)
		printDoctor(stdout, reports)
	}
	var problems []string
	if !w.OK {
		problems = append(problems, "W&B's SCIM API cannot be used: "+w.Error)
	}
	if idpsFailed > 0 {
		problems = append(problems, fmt.Sprintf("%d of %d identity providers cannot be read", idpsFailed, len(idps)))
	}
	if failed > 0 {
		problems = append(problems, fmt.Sprintf("%d of %d buckets do not meet W&B's requirements", failed, len(reports)))
	}
	if len(problems) > 0 {
		return &exitError{code: 1, err: errors.New(strings.Join(problems, "; "))}
	}
	return nil
}

// idpReport is doctor's check of one identity provider source: its selected groups are read once
// with their members, as the daemon reads them at start. The readers name a missing permission
// (Entra: User.Read.All for the members' details, GroupMember.Read.All for the groups).
type idpReport struct {
	Source string `json:"source"`
	OK     bool   `json:"ok"`
	Groups int    `json:"groups"`
	Error  string `json:"error,omitempty"`
}

func (a *agent) doctorIdPs(ctx context.Context) ([]idpReport, error) {
	idps, _, err := newSources(a.cfg)
	if err != nil {
		return nil, err
	}
	var out []idpReport
	for _, p := range idps {
		groups, err := p.Source.Groups(ctx)
		r := idpReport{Source: p.Name, OK: err == nil, Groups: len(groups)}
		if err != nil {
			r.Error = err.Error()
		}
		out = append(out, r)
	}
	return out, nil
}

func printIdPs(w io.Writer, reports []idpReport) {
	for _, r := range reports {
		if r.OK {
			fmt.Fprintf(w, "identity provider %s: ok (%d groups selected)\n", r.Source, r.Groups)
		} else {
			fmt.Fprintf(w, "identity provider %s: FAIL\n  %s\n", r.Source, oneLine(r.Error))
		}
	}
	if len(reports) > 0 {
		fmt.Fprintln(w)
	}
}

// wandbReport is doctor's check of W&B itself: reachable, taking the credentials, and what the
// deployment means for these teams.
type wandbReport struct {
	URL        string   `json:"url"`
	Auth       string   `json:"auth"`
	Deployment string   `json:"deployment"`
	OK         bool     `json:"ok"`
	Error      string   `json:"error,omitempty"`
	Fix        string   `json:"fix,omitempty"`
	Notes      []string `json:"notes,omitempty"`
}

// doctorWandb asks W&B for one team. Deployment differences are said here rather than discovered when
// a team fails (https://docs.wandb.ai/platform/hosting/iam/scim, "Authentication"; the BYOB page for
// the version gates).
func (a *agent) doctorWandb(ctx context.Context) wandbReport {
	cfg := a.cfg.Wandb
	rep := wandbReport{URL: cfg.SCIMURL, Auth: cfg.Auth.Mode, Deployment: cfg.Deployment, Notes: a.deploymentNotes()}
	client, err := a.wandbClient(nil)
	if err == nil {
		err = client.Ping(ctx)
	}
	if err == nil {
		rep.OK = true
		return rep
	}
	if ce := transport.AsCertError(err); ce != nil {
		err = ce
	}
	rep.Error = err.Error()
	var ae *wandb.APIError
	if !errors.As(err, &ae) {
		return rep
	}
	switch {
	case ae.StatusCode == http.StatusUnauthorized && cfg.Auth.Mode == config.AuthBearer && cfg.Deployment != config.DeploymentMultiTenant:
		rep.Fix = "W&B refused the key as a bearer token. Dedicated and self-managed W&B accept bearer tokens from server v0.79.0: on an older server set wandb.auth.mode to basic-user (with username) or basic-service-account, or upgrade W&B. Otherwise the key is wrong or revoked."
	case ae.StatusCode == http.StatusUnauthorized:
		rep.Fix = "W&B refused the credentials: check the API key (and wandb.auth.username with basic-user); a team-scoped service account's key is refused by the SCIM API."
	case ae.StatusCode == http.StatusForbidden:
		rep.Fix = "W&B refused the request: the SCIM API needs the key of an organisation or instance admin, or of an organisation-scoped service account."
	case ae.StatusCode == http.StatusNotFound:
		rep.Fix = "no SCIM API at that URL: wandb.scimURL is https://api.wandb.ai/scim/v2 (multi-tenant), https://<instance>.wandb.io/scim (dedicated) or https://<host>/scim (self-managed)."
	}
	return rep
}

// deploymentNotes says what the deployment and the profiles' providers mean, once per kind.
func (a *agent) deploymentNotes() []string {
	var notes []string
	providers := map[string]bool{}
	for _, name := range a.cfg.ProfileNames() {
		p, _ := a.cfg.Profile(name)
		providers[p.Provider] = true
	}
	if a.cfg.Wandb.Deployment == config.DeploymentMultiTenant {
		notes = append(notes, "Multi-tenant Cloud: the API key acts on its owner's default API organisation. If the owner belongs to several organisations, make sure that default is the organisation these teams belong in (W&B user settings); the SCIM API does not say which organisation a key acts on, so the agent cannot check it.")
	} else if providers[team.ProviderCoreWeave] {
		notes = append(notes, "CoreWeave team storage needs W&B server v0.73.0 or newer.")
	}
	if providers[team.ProviderAzure] || providers[team.ProviderS3Compatible] {
		notes = append(notes, "Azure and S3-compatible teams: W&B receives only the container or bucket name; it finds the storage account or the endpoint in the instance's file stores, which must list every such bucket (`byob-agent file-stores` prints the entries).")
	}
	return notes
}

func printWandb(w io.Writer, r wandbReport) {
	result := "ok"
	if !r.OK {
		result = "FAIL"
	}
	fmt.Fprintf(w, "W&B %s (%s, auth %s): %s\n", r.URL, r.Deployment, r.Auth, result)
	if r.Error != "" {
		fmt.Fprintf(w, "  %s\n", oneLine(r.Error))
	}
	if r.Fix != "" {
		fmt.Fprintf(w, "  fix: %s\n", r.Fix)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
	fmt.Fprintln(w)
}

func (a *agent) doctor(ctx context.Context, r state.Record) doctorReport {
	rep := doctorReport{Team: r.Name, Provider: r.Storage.Provider, Bucket: r.Storage.Bucket, Path: r.Storage.Path}
	f, err := a.factory(ctx, r.Profile)
	if err != nil {
		rep.Error = err.Error()
		return rep
	}
	b := apply.BucketOf(r)
	results, err := f.Check(ctx, b, bucketfactory.CheckOptions{Probe: true})
	if ce := transport.AsCertError(err); ce != nil {
		err = ce
	}
	if err != nil {
		rep.Error = fmt.Sprintf("the checks could not run: %v", err)
		return rep
	}
	rep.Checks, rep.OK = results, true
	for _, c := range results {
		rep.OK = rep.OK && c.OK
	}
	return rep
}

func printDoctor(w io.Writer, reports []doctorReport) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TEAM\tPROVIDER\tBUCKET\tRESULT\tCHECKS")
	for _, r := range reports {
		result := "ok"
		if !r.OK {
			result = "FAIL"
		}
		checks := make([]string, 0, len(r.Checks))
		for _, c := range r.Checks {
			mark := "pass"
			if !c.OK {
				mark = "FAIL"
			}
			checks = append(checks, c.Check+"="+mark)
		}
		if r.Error != "" {
			checks = append(checks, "error")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Team, r.Provider, bucketPath(r.Bucket, r.Path), result, strings.Join(checks, " "))
	}
	tw.Flush()
	for _, r := range reports {
		if r.OK {
			continue
		}
		fmt.Fprintf(w, "\n%s (%s):\n", r.Team, bucketPath(r.Bucket, r.Path))
		if r.Error != "" {
			fmt.Fprintf(w, "  %s\n", oneLine(r.Error))
		}
		for _, c := range r.Checks {
			if !c.OK {
				fmt.Fprintf(w, "  %s: expected %s, found %s\n    fix: %s\n", c.Check, oneLine(c.Expected), oneLine(c.Found), oneLine(c.Fix))
			}
		}
	}
}

// selectRecords keeps the records of teams with a bucket, or exactly the named teams.
func selectRecords(recs []state.Record, names []string) ([]state.Record, error) {
	var out []state.Record
	for _, r := range recs {
		if r.Storage.Bucket != "" && (len(names) == 0 || slices.Contains(names, r.Name)) {
			out = append(out, r)
		}
	}
	for _, n := range names {
		if !slices.ContainsFunc(out, func(r state.Record) bool { return r.Name == n }) {
			return nil, &exitError{code: 2, err: fmt.Errorf("team %q has no bucket in the state (see `byob-agent state ls`)", n)}
		}
	}
	return out, nil
}

// cmdFileStores prints the value of self-managed W&B's GORILLA_SUPPORTED_FILE_STORES for every bucket
// the agent manages. It is the only command that prints credentials.
func cmdFileStores(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	g := &globals{}
	fs := newFlagSet("file-stores", stderr, g)
	output := fs.String("output", "", "write the value to this file (mode 0600) instead of standard output")
	if err := fs.Parse(args); err != nil {
		return &exitError{code: 2, err: fmt.Errorf("")}
	}
	a, err := openAgentState(ctx, g, stderr, state.Options{ReadOnly: true})
	if err != nil {
		return err
	}
	defer a.db.Close()
	recs, err := a.db.List(ctx)
	if err != nil {
		return err
	}
	var stores []string
	seen := map[string]bool{}
	nameOnly := false // an Azure or S3-compatible bucket: W&B gets only its name
	for _, r := range recs {
		if r.Storage.Bucket == "" || seen[r.Storage.BucketID()] {
			continue
		}
		seen[r.Storage.BucketID()] = true
		nameOnly = nameOnly || r.Storage.Provider == team.ProviderAzure || r.Storage.Provider == team.ProviderS3Compatible
		addr, err := a.fileStore(ctx, r)
		if err != nil {
			return fmt.Errorf("team %q: %w", r.Name, err)
		}
		if !slices.Contains(stores, addr) {
			stores = append(stores, addr)
		}
	}
	value := strings.Join(stores, ",")
	fmt.Fprintln(stderr, "byob-agent: this value holds storage credentials: keep it secret (W&B reads it from GORILLA_SUPPORTED_FILE_STORES)")
	if nameOnly {
		fmt.Fprintln(stderr, "byob-agent: W&B receives only the container or bucket name of Azure and S3-compatible teams and finds the storage account or endpoint in these entries: every one must be in the instance's file stores before its team is created")
	}
	if *output == "" {
		_, err := fmt.Fprintln(stdout, value)
		return err
	}
	return writeSecretFile(*output, value+"\n")
}

// fileStore is a bucket's entry in GORILLA_SUPPORTED_FILE_STORES. W&B documents "cw://" as the one
// entry for every CoreWeave bucket; other providers list each bucket's address.
func (a *agent) fileStore(ctx context.Context, r state.Record) (string, error) {
	if r.Storage.Provider == "coreweave" {
		return "cw://", nil
	}
	f, err := a.factory(ctx, r.Profile)
	if err != nil {
		return "", err
	}
	return f.Address(ctx, apply.BucketOf(r))
}

// writeSecretFile replaces path with a file holding data, readable by its owner only. The data goes
// to a new temporary file in the same directory (created exclusively, mode 0600 from the start) that
// is then renamed over path: a reader never sees a partial file, nothing is ever written with a wider
// mode, and no symlink is followed. A symlink at path is refused rather than replaced, so that a link
// someone set up (or planted) is never silently swapped for a file.
func writeSecretFile(path, data string) error {
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		return fmt.Errorf("write %s: it is a symbolic link; refusing to write the secret value through it: remove the link or choose another file", path)
	}
	dir, base := filepath.Split(path)
	f, err := os.CreateTemp(dir, "."+base+".tmp-*") // O_EXCL, mode 0600
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.WriteString(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		// rename replaces what is at path, a symlink planted since the check included, never its target.
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// markRegistered records that the operator registered the team's bucket with W&B (every team on that
// bucket) and says which teams it marked.
func markRegistered(ctx context.Context, db stateStore, name string, stdout io.Writer) error {
	marked, err := db.MarkRegistered(ctx, name)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	for _, r := range marked {
		fmt.Fprintf(stdout, "marked bucket %s registered for team %s\n", r.Storage.Bucket, r.Name)
	}
	return nil
}
