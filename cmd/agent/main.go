// Command byob-agent provisions W&B teams whose storage is a bucket the customer owns. It parses the
// command line, loads the configuration, builds the clients and wires the packages together, and
// prints what the commands found; the work itself is done by the packages it wires.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `byob-agent: bring-your-own-bucket W&B teams, provisioned from a YAML file and SCIM pushes.

Usage:
  byob-agent run     [--config FILE]                the daemon: HTTP (SCIM, webhooks, health, metrics), schedule, workers
  byob-agent plan    [--config FILE] [--json]       what sync would do; changes nothing
  byob-agent sync    [--config FILE] [--json]       create and verify buckets, create W&B teams, once
  byob-agent state ls     [--config FILE] [--json] every team the state knows, with its phase
  byob-agent state show   [--config FILE] TEAM     one team's full record (JSON)
  byob-agent state export [--config FILE]          the whole state as JSON
  byob-agent state backup [--config FILE] FILE     a consistent copy of the state file (asks the daemon while it runs)
  byob-agent state mark-registered TEAM            the team's bucket is now registered with W&B (requireRegistered)
  byob-agent state migrate --to postgres|bolt [--file FILE] [--dsn-env NAME|--dsn-file FILE]
                                                   copy team records and cursors between the state file and
                                                   PostgreSQL (DSN from $BYOB_STATE_POSTGRES_DSN), verified; agents stopped
  byob-agent doctor  [--config FILE] [--json] [TEAM...]  check buckets against W&B's requirements, with fixes
  byob-agent file-stores [--config FILE] [--output FILE] GORILLA_SUPPORTED_FILE_STORES value (holds secrets)
  byob-agent import  [--config FILE] [--output FILE]  teams-list entries to adopt the W&B teams made by hand
  byob-agent config validate [--config FILE]       check the configuration; prints every problem
  byob-agent version

Common flags: --config FILE (default byob-agent.yaml, or $BYOB_AGENT_CONFIG),
  --log-level debug|info|warn|error (default info), --log-format text|json (default text).
state ls, show, export and backup read the state file, or ask the daemon that holds it (server.adminToken);
  --daemon URL asks the daemon at URL.
Exit codes: 0 success; 1 a team failed, is in conflict or its adoption was refused; 2 bad usage or configuration.
`

// exitError carries an exit code through the command functions.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	stopProfiles := startProfiles()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	stopProfiles()
	if err == nil {
		return
	}
	code := 1
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
	}
	if err.Error() != "" {
		fmt.Fprintln(os.Stderr, "byob-agent:", err)
	}
	os.Exit(code)
}

// globals are the flags every command takes.
type globals struct {
	config    string
	logLevel  string
	logFormat string
	json      bool
}

func (g *globals) register(fs *flag.FlagSet) {
	def := os.Getenv("BYOB_AGENT_CONFIG")
	if def == "" {
		def = "byob-agent.yaml"
	}
	fs.StringVar(&g.config, "config", def, "configuration file")
	fs.StringVar(&g.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&g.logFormat, "log-format", "text", "text or json")
	fs.BoolVar(&g.json, "json", false, "machine-readable output")
}

func (g *globals) logger(w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(g.logLevel)); err != nil {
		return nil, usageErr("--log-level %q: want debug, info, warn or error", g.logLevel)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch g.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usageErr("--log-format %q: want text or json", g.logFormat)
}

func usageErr(format string, args ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, args...)}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return &exitError{code: 2, err: errors.New("")}
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "run":
		return cmdRun(ctx, rest, stdout, stderr)
	case "plan":
		return cmdPlan(ctx, rest, stdout, stderr)
	case "sync":
		return cmdSync(ctx, rest, stdout, stderr)
	case "doctor":
		return cmdDoctor(ctx, rest, stdout, stderr)
	case "file-stores":
		return cmdFileStores(ctx, rest, stdout, stderr)
	case "import":
		return cmdImport(ctx, rest, stdout, stderr)
	case "state":
		if len(rest) == 0 {
			return usageErr("state: want ls, show, export, backup, mark-registered or migrate")
		}
		return cmdState(ctx, rest[0], rest[1:], stdout, stderr)
	case "config":
		if len(rest) == 0 || rest[0] != "validate" {
			return usageErr("config: want validate")
		}
		return cmdValidate(rest[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "byob-agent", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return usageErr("unknown command %q", cmd)
}

// parse parses a command's flags; positional arguments may come before or after flags.
func parse(name string, args []string, stderr io.Writer) (*globals, []string, error) {
	g := &globals{}
	pos, err := parseArgs(newFlagSet(name, stderr, g), args)
	return g, pos, err
}

// parseArgs parses args with fs, which may have flags of its own command; it returns the positional
// arguments, which may come before or after flags.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, &exitError{code: 2, err: errors.New("")}
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	return pos, nil
}

// newFlagSet is a command's flag set with the common flags registered into g.
func newFlagSet(name string, stderr io.Writer, g *globals) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	g.register(fs)
	return fs
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
