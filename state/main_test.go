package state

import (
	"context"
	"fmt"
	"io"
	"os"
	"testing"
)

// holdEnv makes the test binary a second byob-agent process: it opens the state file it names
// writable, writes a record, says "ready" and holds the file until its stdin closes.
const holdEnv = "BYOB_STATE_TEST_HOLD"

func TestMain(m *testing.M) {
	if path := os.Getenv(holdEnv); path != "" {
		if err := hold(path); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func hold(path string) error {
	d, err := Open(path, Options{})
	if err != nil {
		return err
	}
	defer d.Close()
	if _, err := d.Update(context.Background(), "held", func(r *Record) error { r.Phase = PhaseInSync; return nil }); err != nil {
		return err
	}
	fmt.Println("ready")
	_, err = io.Copy(io.Discard, os.Stdin) // until the test closes it
	return err
}
