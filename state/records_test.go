package state_test

import (
	"path/filepath"
	"testing"

	"github.com/byob-agent/byob-agent/state"
	"github.com/byob-agent/byob-agent/state/statetest"
)

func TestBoltRecords(t *testing.T) {
	statetest.Records(t, func(t *testing.T) statetest.Store {
		d, err := state.Open(filepath.Join(t.TempDir(), "state.db"), state.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		return d
	})
}

func TestBoltSCIM(t *testing.T) {
	statetest.SCIM(t, func(t *testing.T) statetest.SCIMStore {
		d, err := state.Open(filepath.Join(t.TempDir(), "state.db"), state.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		return d
	})
}
