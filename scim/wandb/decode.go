package wandb

import (
	"encoding/json"
	"errors"
	"fmt"
)

// W&B's responses have quirks (docs/wandb.md): member objects with capitalised keys ("Value",
// "Display"), "members": null, "status" as a string or a number. encoding/json matches keys
// case-insensitively and leaves a null slice nil, which covers the first two; the tests pin that down.

// groupList is a SCIM ListResponse of groups.
type groupList struct {
	TotalResults int     `json:"totalResults"`
	Resources    []Group `json:"Resources"`
}

// errorBody is a SCIM error response.
type errorBody struct {
	Status   json.RawMessage `json:"status"` // a string per RFC 7644, sometimes a number: accept either
	SCIMType string          `json:"scimType"`
	Detail   string          `json:"detail"`
}

func decodeGroup(data []byte) (Group, error) {
	var g Group
	if err := json.Unmarshal(data, &g); err != nil {
		return Group{}, fmt.Errorf("decoding group: %w", err)
	}
	if g.ID == "" {
		return Group{}, errors.New("decoding group: no id")
	}
	return g, nil
}

func decodeGroupList(data []byte) (groupList, error) {
	var l groupList
	if err := json.Unmarshal(data, &l); err != nil {
		return groupList{}, fmt.Errorf("decoding group list: %w", err)
	}
	for i, g := range l.Resources {
		if g.ID == "" {
			return groupList{}, fmt.Errorf("decoding group list: group %d (%q) has no id", i, g.DisplayName)
		}
	}
	return l, nil
}

// decodeErrorBody fails unless data looks like a SCIM error (has status, scimType or detail).
func decodeErrorBody(data []byte) (errorBody, error) {
	var e errorBody
	if err := json.Unmarshal(data, &e); err != nil {
		return errorBody{}, fmt.Errorf("decoding error body: %w", err)
	}
	if len(e.Status) == 0 && e.SCIMType == "" && e.Detail == "" {
		return errorBody{}, errors.New("decoding error body: not a SCIM error")
	}
	return e, nil
}
