package state

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// The rules every backend applies to team records, so that bbolt and PostgreSQL agree (the shared
// suite, package statetest, holds both to them).

// Apply runs an update's fn on a copy of r and returns the result and whether it differs from r;
// a changed record gets UpdatedAt (and CreatedAt, the first time) set to now. An error from fn is
// returned as it is: the caller stores nothing.
func Apply(r Record, fn func(*Record) error, now time.Time) (Record, bool, error) {
	before, err := json.Marshal(r)
	if err != nil {
		return Record{}, false, fmt.Errorf("encode team %q: %w", r.Name, err)
	}
	if err := fn(&r); err != nil {
		return Record{}, false, err
	}
	if after, _ := json.Marshal(r); bytes.Equal(before, after) {
		return r, false, nil // nothing changed: no write
	}
	now = now.UTC()
	if r.CreatedAt.IsZero() {
		r.CreatedAt = now
	}
	r.UpdatedAt = now
	return r, true, nil
}

// Registering returns the records MarkRegistered marks when asked for target: registration is per
// bucket, so every record on target's bucket, with Registered set and UpdatedAt now. A team whose
// bucket is not ready yet is an error.
func Registering(target Record, all []Record, now time.Time) ([]Record, error) {
	if target.Phase == PhaseDesired || target.Storage.Bucket == "" {
		return nil, fmt.Errorf("team %q: its bucket is not ready yet; run `byob-agent sync` first", target.Name)
	}
	var marked []Record
	for _, r := range all {
		if r.Storage.BucketID() == target.Storage.BucketID() {
			r.Registered, r.UpdatedAt = true, now.UTC()
			marked = append(marked, r)
		}
	}
	return marked, nil
}

// WriteExport writes records as Export does: indented JSON with the schema version.
func WriteExport(w io.Writer, recs []Record) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		SchemaVersion int      `json:"schemaVersion"`
		Teams         []Record `json:"teams"`
	}{SchemaVersion, recs})
}
