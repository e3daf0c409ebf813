package testenv

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestStartPostgres(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var logs strings.Builder
	env, err := StartPostgres(ctx, PostgresOptions{Logs: &logs})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			env.Close()
		}
		if t.Failed() {
			t.Logf("server output:\n%s", logs.String())
		}
	}()

	// Two databases of one server are apart: a table made in one is not in the other.
	dsnA, err := env.NewDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dsnB, err := env.NewDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if dsnA == dsnB {
		t.Fatalf("NewDatabase returned %s twice", dsnA)
	}
	a, err := pgx.Connect(ctx, dsnA)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(ctx)
	if _, err := a.Exec(ctx, "CREATE TABLE x (v int); INSERT INTO x VALUES (42)"); err != nil {
		t.Fatal(err)
	}
	var v int
	if err := a.QueryRow(ctx, "SELECT v FROM x").Scan(&v); err != nil || v != 42 {
		t.Fatalf("read back %d, %v", v, err)
	}
	b, err := pgx.Connect(ctx, dsnB)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(ctx)
	if err := b.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE tablename = 'x'").Scan(&v); err != nil || v != 0 {
		t.Fatalf("the other database has %d tables x (%v), want 0", v, err)
	}

	// The server runs as postgres when the test runs as root, and listens on its unix socket too.
	var dataDir string
	if err := a.QueryRow(ctx, "SELECT current_setting('data_directory')").Scan(&dataDir); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if want := uint32(os.Geteuid()); want == 0 {
		cred, err := postgresCredential()
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Sys().(*syscall.Stat_t).Uid; got != cred.Uid {
			t.Errorf("data directory owned by uid %d, want postgres (%d)", got, cred.Uid)
		}
	}
	if _, err := os.Stat(env.SocketDir + "/.s.PGSQL." + strconv.Itoa(env.Port)); err != nil {
		t.Errorf("no unix socket: %v", err)
	}

	a.Close(ctx)
	b.Close(ctx)
	if err := env.Close(); err != nil {
		t.Fatal(err)
	}
	closed = true
	if c, err := net.Dial("tcp", net.JoinHostPort(env.Host, strconv.Itoa(env.Port))); err == nil {
		c.Close()
		t.Error("the server still accepts connections after Close")
	}
	if _, err := os.Stat(env.dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("work directory left after Close: %v", err)
	}
}

func TestStartPostgresWithoutBinaries(t *testing.T) {
	_, err := StartPostgres(t.Context(), PostgresOptions{BinDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "install the Debian package postgresql") {
		t.Fatalf("got %v, want an error naming the Debian package", err)
	}
}
