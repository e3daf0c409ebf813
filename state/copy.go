package state

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
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
type Copied struct{ Teams, Cursors, Users, Groups int }

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

// SCIMCopySource is a backend whose SCIM push store can be copied.
type SCIMCopySource interface {
	SCIMUsers(ctx context.Context) ([]SCIMUser, error)
	SCIMGroups(ctx context.Context) ([]SCIMGroup, error) // deleted ones included, members resolved
}

// SCIMCopyTarget is a backend that can take a copy of a SCIM push store: ImportSCIM stores users and
// groups as they are (ids, versions, times; deleted groups too) into a store with none yet.
type SCIMCopyTarget interface {
	SCIMCopySource
	ImportSCIM(ctx context.Context, users []SCIMUser, groups []SCIMGroup) error
}

// CopySCIM copies every SCIM user and group of src into dst, which has none, then reads dst back and
// compares it with what was read from src, record by record (resolved members included).
func CopySCIM(ctx context.Context, dst SCIMCopyTarget, src SCIMCopySource) (Copied, error) {
	users, err := src.SCIMUsers(ctx)
	if err != nil {
		return Copied{}, fmt.Errorf("read the source's SCIM users: %w", err)
	}
	groups, err := src.SCIMGroups(ctx)
	if err != nil {
		return Copied{}, fmt.Errorf("read the source's SCIM groups: %w", err)
	}
	if err := dst.ImportSCIM(ctx, users, groups); err != nil {
		return Copied{}, fmt.Errorf("write the copy of the SCIM store: %w", err)
	}
	gotUsers, err := dst.SCIMUsers(ctx)
	if err != nil {
		return Copied{}, fmt.Errorf("read the copy's SCIM users back: %w", err)
	}
	gotGroups, err := dst.SCIMGroups(ctx)
	if err != nil {
		return Copied{}, fmt.Errorf("read the copy's SCIM groups back: %w", err)
	}
	if err := sameRecords("SCIM user", users, gotUsers, func(u SCIMUser) string { return u.ID }, nil); err != nil {
		return Copied{}, err
	}
	members := func(a, b SCIMGroup) bool { return slices.Equal(a.Members, b.Members) }
	if err := sameRecords("SCIM group", groups, gotGroups, func(g SCIMGroup) string { return g.ID }, members); err != nil {
		return Copied{}, err
	}
	return Copied{Users: len(users), Groups: len(groups)}, nil
}

// sameRecords compares a copy with its source record by record, as JSON and with same (if set).
func sameRecords[T any](what string, want, got []T, id func(T) string, same func(a, b T) bool) error {
	if len(got) != len(want) {
		return fmt.Errorf("verify the copy: it has %d %ss, the source %d", len(got), what, len(want))
	}
	for i := range want {
		a, _ := json.Marshal(want[i])
		b, _ := json.Marshal(got[i])
		if string(a) != string(b) || (same != nil && !same(want[i], got[i])) {
			return fmt.Errorf("verify the copy: %s %q differs from the source (copy has %q)", what, id(want[i]), id(got[i]))
		}
	}
	return nil
}
