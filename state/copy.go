package state

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
)

// CopySource is a backend whose team records and cursors can be copied.
type CopySource interface {
	List(ctx context.Context) ([]Record, error)
	Cursors(ctx context.Context) (map[string]string, error)
}

// CopyTarget is a backend that can take a copy: Import stores records as they are (timestamps
// included) into a store that has no team and no cursor yet, in one transaction.
type CopyTarget interface {
	CopySource
	Import(ctx context.Context, recs []Record, cursors map[string]string) error
}

// Copied is what Copy copied.
type Copied struct{ Teams, Cursors int }

// Copy copies every team record and cursor of src into dst, which must be empty, then reads dst back
// and compares it with what was read from src, record by record. The caller keeps src from being
// written meanwhile (an open bbolt file is locked; PostgreSQL replicas must be stopped).
func Copy(ctx context.Context, dst CopyTarget, src CopySource) (Copied, error) {
	recs, err := src.List(ctx)
	if err != nil {
		return Copied{}, fmt.Errorf("read the source: %w", err)
	}
	cursors, err := src.Cursors(ctx)
	if err != nil {
		return Copied{}, fmt.Errorf("read the source's cursors: %w", err)
	}
	if err := dst.Import(ctx, recs, cursors); err != nil {
		return Copied{}, fmt.Errorf("write the copy: %w", err)
	}
	got, err := dst.List(ctx)
	if err != nil {
		return Copied{}, fmt.Errorf("read the copy back: %w", err)
	}
	if len(got) != len(recs) {
		return Copied{}, fmt.Errorf("verify the copy: it has %d teams, the source %d", len(got), len(recs))
	}
	for i := range recs {
		want, _ := json.Marshal(recs[i])
		have, _ := json.Marshal(got[i])
		if string(want) != string(have) {
			return Copied{}, fmt.Errorf("verify the copy: team %q differs from the source (copy has team %q)", recs[i].Name, got[i].Name)
		}
	}
	gotCursors, err := dst.Cursors(ctx)
	if err != nil {
		return Copied{}, fmt.Errorf("read the copy's cursors back: %w", err)
	}
	if !maps.Equal(gotCursors, cursors) {
		return Copied{}, fmt.Errorf("verify the copy: its %d cursors differ from the source's %d", len(gotCursors), len(cursors))
	}
	return Copied{Teams: len(recs), Cursors: len(cursors)}, nil
}
