package state

import (
	"context"
	"path/filepath"
	"testing"
)

func TestCursor(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	d, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := d.Cursor(ctx, "graph/delta"); err != nil || v != "" {
		t.Fatalf("Cursor on a new state = %q, %v; want empty", v, err)
	}
	for _, want := range []string{"https://graph.microsoft.com/v1.0/groups/delta?$deltatoken=a", "b", ""} {
		if err := d.SetCursor(ctx, "graph/delta", want); err != nil {
			t.Fatal(err)
		}
		if got, _ := d.Cursor(ctx, "graph/delta"); got != want {
			t.Fatalf("Cursor = %q, want %q", got, want)
		}
	}
	if err := d.SetCursor(ctx, "okta/logs", "x"); err != nil {
		t.Fatal(err)
	}
	d.Close()
	d, err = Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("reopen with a cursor bucket: %v", err)
	}
	defer d.Close()
	if got, _ := d.Cursor(ctx, "okta/logs"); got != "x" {
		t.Fatalf("after reopen Cursor = %q, want x", got)
	}
}
