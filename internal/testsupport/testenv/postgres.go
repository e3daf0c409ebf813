package testenv

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresBinDir is where Debian's package postgresql-15 puts the server binaries.
const PostgresBinDir = "/usr/lib/postgresql/15/bin"

// postgresStartAttempts bounds retries of the server: its port is picked free but bound a moment later,
// so another process can take it in between.
const postgresStartAttempts = 3

// PostgresOptions configures StartPostgres. The zero value is ready to use.
type PostgresOptions struct {
	BinDir string    // initdb and postgres; default PostgresBinDir
	Logs   io.Writer // receives the server's output; nil: discarded (the tail still appears in start errors)
}

// PostgresEnv is a PostgreSQL server of its own in a temporary directory, listening on a loopback port
// and on a unix socket in that directory, with trust authentication for the superuser postgres.
type PostgresEnv struct {
	Host      string // 127.0.0.1
	Port      int
	SocketDir string

	dir    string // removed by Close
	server *child
}

// StartPostgres runs initdb in a new temporary directory and starts postgres on it, returning when it
// answers queries. PostgreSQL refuses to run as root: as root, both run as the user postgres (which
// Debian's package creates), in a directory that user owns. ctx bounds the start-up only; the server
// runs until Close.
func StartPostgres(ctx context.Context, o PostgresOptions) (_ *PostgresEnv, err error) {
	if o.BinDir == "" {
		o.BinDir = PostgresBinDir
	}
	logs := io.Discard
	if o.Logs != nil {
		logs = &lockedWriter{w: o.Logs}
	}
	for _, b := range []string{"initdb", "postgres"} {
		if _, err := os.Stat(filepath.Join(o.BinDir, b)); err != nil {
			return nil, fmt.Errorf("PostgreSQL server binaries not found (%v): install the Debian package postgresql (apt-get install postgresql)", err)
		}
	}
	cred, err := postgresCredential()
	if err != nil {
		return nil, err
	}
	e := &PostgresEnv{Host: "127.0.0.1"}
	defer func() {
		if err != nil {
			err = errors.Join(err, e.Close())
		}
	}()
	if e.dir, err = os.MkdirTemp("", "byob-postgres-"); err != nil {
		return nil, fmt.Errorf("create PostgreSQL work directory: %w", err)
	}
	e.SocketDir = filepath.Join(e.dir, "sock")
	dataDir := filepath.Join(e.dir, "data")
	if err := os.Mkdir(e.SocketDir, 0o700); err != nil {
		return nil, fmt.Errorf("create PostgreSQL socket directory: %w", err)
	}
	if cred != nil {
		for _, d := range []string{e.dir, e.SocketDir} {
			if err := os.Chown(d, int(cred.Uid), int(cred.Gid)); err != nil {
				return nil, fmt.Errorf("give %s to the user postgres: %w", d, err)
			}
		}
	}
	initdb := exec.CommandContext(ctx, filepath.Join(o.BinDir, "initdb"), "-D", dataDir, "-U", "postgres",
		"--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions")
	initdb.SysProcAttr = childProcAttr()
	initdb.SysProcAttr.Credential = cred
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb %s: %w; output:\n%s", dataDir, err, out)
	}
	var errs []error
	for range postgresStartAttempts {
		err := e.start(ctx, filepath.Join(o.BinDir, "postgres"), dataDir, cred, logs)
		if err == nil {
			return e, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("start postgres: %w", errors.Join(errs...))
}

// postgresCredential is the user the server runs as: postgres when running as root, else nil (the
// current user).
func postgresCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL refuses to run as root and there is no user postgres to run it as (%v): install the Debian package postgresql, which creates it", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user postgres: uid %q: %w", u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user postgres: gid %q: %w", u.Gid, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func (e *PostgresEnv) start(ctx context.Context, bin, dataDir string, cred *syscall.Credential, logs io.Writer) error {
	ports, err := freePorts(1)
	if err != nil {
		return err
	}
	// Durability is traded for speed: the data lives as long as the test binary.
	c, err := startChild("postgres", bin, []string{"-D", dataDir,
		"-c", "listen_addresses=" + e.Host, "-c", "port=" + strconv.Itoa(ports[0]),
		"-c", "unix_socket_directories=" + e.SocketDir, "-c", "max_connections=200",
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
	}, nil, logs, runAs(cred), stopWith(syscall.SIGINT))
	if err != nil {
		return err
	}
	e.Port = ports[0]
	err = c.waitReady(ctx, "PostgreSQL", 100*time.Millisecond, func(ctx context.Context) error {
		conn, err := pgx.Connect(ctx, e.DSN("postgres"))
		if err != nil {
			return err
		}
		defer conn.Close(context.Background())
		return conn.Ping(ctx)
	})
	if err != nil {
		c.stop()
		return err
	}
	e.server = c
	return nil
}

// DSN is the URL of database db as the superuser postgres over TCP.
func (e *PostgresEnv) DSN(db string) string {
	u := url.URL{Scheme: "postgres", User: url.User("postgres"), Host: net.JoinHostPort(e.Host, strconv.Itoa(e.Port)),
		Path: "/" + db, RawQuery: "sslmode=disable"}
	return u.String()
}

// NewDatabase creates an empty database with a fresh name and returns its DSN, so that tests sharing
// one server do not see each other's tables.
func (e *PostgresEnv) NewDatabase(ctx context.Context) (string, error) {
	name := "t_" + strings.ToLower(rand.Text()[:16])
	conn, err := pgx.Connect(ctx, e.DSN("postgres"))
	if err != nil {
		return "", fmt.Errorf("create database: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return e.DSN(name), nil
}

// Close stops the server (fast shutdown: open sessions are ended) and removes its directory. It is safe
// to call on a partly started environment.
func (e *PostgresEnv) Close() error {
	if e.server != nil {
		e.server.stop()
	}
	if e.dir == "" {
		return nil
	}
	if err := os.RemoveAll(e.dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", e.dir, err)
	}
	return nil
}

// SharedPostgres is the PostgreSQL server of one test binary: started by the first test that asks
// for a database, closed by the package's TestMain.
var SharedPostgres = NewShared("PostgreSQL", time.Minute, func(ctx context.Context) (*PostgresEnv, error) {
	return StartPostgres(ctx, PostgresOptions{})
})

// PostgresDatabase returns the DSN of a new, empty database on SharedPostgres, or fails t.
func PostgresDatabase(t interface {
	Helper()
	Fatalf(string, ...any)
	Context() context.Context
}) string {
	t.Helper()
	dsn, err := SharedPostgres.Get(t).NewDatabase(t.Context())
	if err != nil {
		t.Fatalf("a database for the test: %v", err)
	}
	return dsn
}
