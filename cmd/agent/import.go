package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/byob-agent/byob-agent/config"
	"github.com/byob-agent/byob-agent/scim/wandb"
	"github.com/byob-agent/byob-agent/state"
	"github.com/byob-agent/byob-agent/state/admin"
	"github.com/byob-agent/byob-agent/team"
)

// cmdImport lists the W&B teams byob-agent does not manage and writes, for each, a teams-list entry
// with an `adopt` block to fill in: W&B's API never shows which bucket a team was created with, so
// the operator states it. It reads W&B and the state, and changes nothing.
func cmdImport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	g := &globals{}
	fs := newFlagSet("import", stderr, g)
	output := fs.String("output", "", "write the entries to this file (replaced whole) instead of standard output")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageErr("import: takes no arguments")
	}
	if _, err := g.logger(stderr); err != nil {
		return err
	}
	cfg, err := loadConfig(g.config)
	if err != nil {
		return err
	}
	recs, err := importRecords(ctx, cfg)
	if err != nil {
		return err
	}
	client, err := newAgent(cfg, nil).wandbClient(nil)
	if err != nil {
		return err
	}
	groups, err := client.ListGroups(ctx)
	if err != nil {
		return fmt.Errorf("list W&B teams: %w", err)
	}
	unmanaged := unmanagedTeams(groups, recs)
	text := importStanzas(cfg, unmanaged)
	if *output == "" {
		_, err = io.WriteString(stdout, text)
	} else {
		err = writeFileReplacing(*output, text, 0o644)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "byob-agent: %d of W&B's %d teams are not managed by byob-agent", len(unmanaged), len(groups))
	if *output != "" {
		fmt.Fprintf(stderr, "; wrote an entry for each to %s", *output)
	}
	fmt.Fprintln(stderr)
	return nil
}

// importRecords reads the state file, or asks the daemon that holds it; before the first sync there
// is no state, and so no team is managed.
func importRecords(ctx context.Context, cfg *config.Config) ([]state.Record, error) {
	if _, err := os.Stat(cfg.State.Path); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	src, closeSrc, err := admin.OpenReader(cfg, "")
	if err != nil {
		return nil, err
	}
	defer closeSrc()
	return src.List(ctx)
}

// unmanagedTeams are W&B's teams that no state record manages (a record of a team not created by the
// agent, such as one in conflict with a team made by hand, does not), sorted by name.
func unmanagedTeams(groups []wandb.Group, recs []state.Record) []wandb.Group {
	managed := map[string]bool{}
	for _, r := range recs {
		if r.Phase.Created() {
			managed[r.Name] = true
		}
	}
	var out []wandb.Group
	for _, g := range groups {
		if !managed[g.DisplayName] {
			out = append(out, g)
		}
	}
	slices.SortFunc(out, func(a, b wandb.Group) int { return strings.Compare(a.DisplayName, b.DisplayName) })
	return out
}

// importStanzas is the teams list to fill in: one entry per team, each value the operator must
// state marked config.Placeholder (which loading refuses) and explained in a comment.
func importStanzas(cfg *config.Config, groups []wandb.Group) string {
	var b strings.Builder
	if len(groups) == 0 {
		b.WriteString("# byob-agent import: every W&B team is managed by byob-agent already.\nteams: []\n")
		return b.String()
	}
	fill := strconv.Quote(config.Placeholder)
	fmt.Fprintf(&b, `# byob-agent import: %d W&B teams that byob-agent does not manage (%s).
# To have byob-agent take one over, replace every %s below with what the team was created with
# (W&B's API never shows a team's storage: see the team's settings in W&B, or ask who created it),
# delete the entries of teams to leave alone, and add the rest to the teams list of the configuration
# (or its teamsFile). byob-agent plan then shows the adoptions, and byob-agent sync makes them: it
# checks the bucket as byob-agent doctor does and refuses one that fails (repair: true lets it apply
# W&B's settings), marks the bucket its own (tags), and never changes the team's storage in W&B.
# A team created without a bucket of its own is on the instance's storage and cannot be adopted.
# Keep the adopt block once the team is adopted: it states the team's storage.
teams:
`, len(groups), cfg.Wandb.SCIMURL, config.Placeholder)
	desired := map[string]team.Team{}
	for _, t := range cfg.DesiredTeams() {
		desired[t.Name] = t
	}
	for _, g := range groups {
		b.WriteString("\n")
		name := g.DisplayName
		if err := checkImportName(cfg, name); err != nil {
			fmt.Fprintf(&b, "  # W&B team %s (id %s) cannot be adopted: %v\n", strconv.Quote(name), strconv.Quote(g.ID), err)
			continue
		}
		profile, profileNote := cfg.DefaultProfile, "the profile whose provider, region, endpoint and credentials reach the bucket"
		if t, ok := desired[name]; ok {
			profile = t.Profile
			fmt.Fprintf(&b, "  # already in the teams list (W&B has a team of that name that byob-agent did not create):\n"+
				"  # add only the adopt block below to that entry\n")
		}
		if profile == "" {
			profile, profileNote = fill, "FILL IN "+profileNote+" ("+strings.Join(cfg.ProfileNames(), ", ")+")"
		}
		fmt.Fprintf(&b, "  - name: %s  # W&B team id %s, members: %d\n", name, strconv.Quote(g.ID), len(g.Members))
		fmt.Fprintf(&b, "    profile: %s  # %s\n", profile, profileNote)
		fmt.Fprintf(&b, "    adopt:\n")
		fmt.Fprintf(&b, "      bucket: %s  # FILL IN the bucket (Azure: container) the team was created with\n", fill)
		fmt.Fprintf(&b, "      path: %s  # FILL IN the prefix inside the bucket the team was created with; \"\" for none\n", fill)
		if p, ok := cfg.Profile(profile); ok && p.KMS.Create {
			fmt.Fprintf(&b, "      kmsKeyArn: %s  # FILL IN the KMS key the bucket is encrypted with (the profile creates keys for new teams only)\n", fill)
		} else {
			b.WriteString("      # kmsKeyArn: the KMS key the bucket is encrypted with, when not the profile's keyArn (aws, s3-compatible)\n")
		}
		b.WriteString("      repair: false  # true lets byob-agent fix bucket settings that fail W&B's checks (CORS, policy, encryption...)\n")
	}
	return b.String()
}

// checkImportName says why a W&B team's name cannot be in the teams list as it is.
func checkImportName(cfg *config.Config, name string) error {
	if err := team.ValidateName(name); err != nil {
		return err
	}
	if !cfg.Wandb.AllowUndocumentedTeamNames {
		if err := team.CheckDocumented(name); err != nil {
			return err
		}
	}
	return nil
}
