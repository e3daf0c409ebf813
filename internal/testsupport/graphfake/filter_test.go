package graphfake

import "testing"

func TestParseFilter(t *testing.T) {
	g := &group{id: "aaaaaaaa-0000-0000-0000-000000000001", displayName: "WandB-ML's team"}
	tests := []struct {
		filter       string
		wantMatch    bool
		wantAdvanced string
		wantErr      bool
	}{
		{"startswith(displayName,'wandb-')", true, "", false},
		{"startswith( displayName , 'x')", false, "", false},
		{"displayName eq 'wandb-ml''s team'", true, "", false},
		{"id eq 'AAAAAAAA-0000-0000-0000-000000000001' and startswith(displayName,'w')", true, "", false},
		{"(displayName eq 'x' or displayName eq 'y') and id eq 'z'", false, "", false},
		{"endswith(displayName,'team')", true, "endsWith", false},
		{"displayName ne 'x'", true, "ne", false},
		{"not startswith(displayName,'w')", false, "not", false},
		{"startswith(displayName,'w'", false, "", true},
		{"displayName eq x", false, "", true},
		{"mail eq 'x'", false, "", true},
		{"displayName eq 'x' extra", false, "", true},
		{"'unterminated", false, "", true},
	}
	for _, tt := range tests {
		p, err := parseFilter(tt.filter)
		if (err != nil) != tt.wantErr {
			t.Errorf("parseFilter(%q) error %v, want error %v", tt.filter, err, tt.wantErr)
			continue
		}
		if err == nil && (p.e.match(g) != tt.wantMatch || p.advanced != tt.wantAdvanced) {
			t.Errorf("parseFilter(%q): match %v, advanced %q; want %v, %q", tt.filter, p.e.match(g), p.advanced, tt.wantMatch, tt.wantAdvanced)
		}
	}
}

// FuzzParseFilter checks that no $filter a client sends can crash the fake.
func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{"startswith(displayName,'wandb-')", "not (id eq 'a' or displayName ne 'b''c')", "((", "'"} {
		f.Add(s)
	}
	g := &group{id: "x", displayName: "y"}
	f.Fuzz(func(t *testing.T, s string) {
		if p, err := parseFilter(s); err == nil {
			p.e.match(g)
		}
	})
}
