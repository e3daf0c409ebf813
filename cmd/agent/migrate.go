package main

import (
	"context"
	"errors"
	"flag"
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

// cmdStateMigrate copies the team records, cursors and SCIM push store between the bbolt state file and PostgreSQL,
// into an empty destination, verified record by record. Every agent must be stopped: the bbolt file's
// lock keeps a daemon out, but nothing keeps PostgreSQL replicas from writing meanwhile.
func cmdStateMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	g := &globals{}
	flags := newFlagSet("state migrate", stderr, g)
	to := flags.String("to", "", "postgres: copy the state file into PostgreSQL; bolt: copy PostgreSQL into a new state file")
	file := flags.String("file", "", "the bbolt state file (default: state.path of the configuration)")
	dsnEnv := flags.String("dsn-env", defaultDSNEnv, "environment variable that holds the PostgreSQL DSN (default: it, else state.postgres of the configuration)")
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
	dsnFlag := false
	flags.Visit(func(f *flag.Flag) { dsnFlag = dsnFlag || f.Name == "dsn-env" || f.Name == "dsn-file" })
	dsn, err := readDSN(*dsnEnv, *dsnFile)
	path := *file
	if path == "" || (err != nil && !dsnFlag) {
		cfg, cerr := loadConfig(g.config)
		if cerr != nil {
			return cerr
		}
		if path == "" {
			path = cfg.State.Path
		}
		if p := cfg.State.Postgres; err != nil && !dsnFlag && p != nil {
			dsn, err = p.DSN.Reveal(), nil // state.postgres of the configuration
		}
	}
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("state migrate: %w", err)}
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
		n, err = copyAll(ctx, pg, db)
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
		n, err = copyAll(ctx, db, pg)
		if cerr := db.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(path) // a new file that is not a whole copy
			return fmt.Errorf("migrate PostgreSQL into %s: %w", path, err)
		}
	}
	fmt.Fprintf(stdout, "copied %d teams, %d cursors, %d SCIM users and %d SCIM groups from %s to %s, verified record by record\n",
		n.Teams, n.Cursors, n.Users, n.Groups, from, into)
	return nil
}

// copyAll copies the team records and cursors, then the SCIM push store.
func copyAll(ctx context.Context, dst interface {
	state.CopyTarget
	state.SCIMCopyTarget
}, src interface {
	state.CopySource
	state.SCIMCopySource
}) (state.Copied, error) {
	n, err := state.Copy(ctx, dst, src)
	if err != nil {
		return n, err
	}
	s, err := state.CopySCIM(ctx, dst, src)
	n.Users, n.Groups = s.Users, s.Groups
	return n, err
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
