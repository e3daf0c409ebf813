package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/byob-agent/byob-agent/state"
	"github.com/byob-agent/byob-agent/state/pgstate"
)

// defaultDSNEnv is where `state migrate` reads the PostgreSQL DSN unless told otherwise.
const defaultDSNEnv = "BYOB_STATE_POSTGRES_DSN"

// cmdStateMigrate copies the team records and cursors between the bbolt state file and PostgreSQL,
// into an empty destination, verified record by record. Every agent must be stopped: the bbolt file's
// lock keeps a daemon out, but nothing keeps PostgreSQL replicas from writing meanwhile.
func cmdStateMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	g := &globals{}
	flags := newFlagSet("state migrate", stderr, g)
	to := flags.String("to", "", "postgres: copy the state file into PostgreSQL; bolt: copy PostgreSQL into a new state file")
	file := flags.String("file", "", "the bbolt state file (default: state.path of the configuration)")
	dsnEnv := flags.String("dsn-env", defaultDSNEnv, "environment variable that holds the PostgreSQL DSN")
	dsnFile := flags.String("dsn-file", "", "file that holds the PostgreSQL DSN (instead of --dsn-env)")
	pos, err := parseArgs(flags, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageErr("state migrate: takes no arguments")
	}
	if *to != "postgres" && *to != "bolt" {
		return usageErr("state migrate: --to must be postgres or bolt")
	}
	dsn, err := readDSN(*dsnEnv, *dsnFile)
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("state migrate: %w", err)}
	}
	path := *file
	if path == "" {
		cfg, err := loadConfig(g.config)
		if err != nil {
			return err
		}
		path = cfg.State.Path
	}
	pg, err := pgstate.Open(ctx, dsn)
	if err != nil {
		return err
	}
	defer pg.Close()

	var n state.Copied
	var from, into string
	if *to == "postgres" {
		db, err := state.Open(path, state.Options{ReadOnly: true}) // fails while a daemon holds the file
		if err != nil {
			return err
		}
		defer db.Close()
		from, into = path, "PostgreSQL"
		n, err = state.Copy(ctx, pg, db)
		if err != nil {
			return fmt.Errorf("migrate %s into PostgreSQL: %w", path, err)
		}
	} else {
		if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
			return usageErr("state migrate --to bolt: %s exists; name a new file with --file", path)
		}
		db, err := state.Open(path, state.Options{})
		if err != nil {
			return err
		}
		from, into = "PostgreSQL", path
		n, err = state.Copy(ctx, db, pg)
		if cerr := db.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(path) // a new file that is not a whole copy
			return fmt.Errorf("migrate PostgreSQL into %s: %w", path, err)
		}
	}
	fmt.Fprintf(stdout, "copied %d teams and %d cursors from %s to %s, verified record by record\n", n.Teams, n.Cursors, from, into)
	fmt.Fprintln(stdout, "SCIM users and groups were not copied: state migrate copies team records and cursors only")
	return nil
}

// readDSN reads the DSN from a file (trailing newline dropped) or an environment variable.
func readDSN(env, file string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("read the PostgreSQL DSN: %w", err)
		}
		if dsn := strings.TrimSpace(string(b)); dsn != "" {
			return dsn, nil
		}
		return "", fmt.Errorf("the PostgreSQL DSN file %s is empty", file)
	}
	if dsn := os.Getenv(env); dsn != "" {
		return dsn, nil
	}
	return "", fmt.Errorf("no PostgreSQL DSN: set %s, or name a file with --dsn-file", env)
}
