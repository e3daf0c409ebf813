package gcsbucket

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"cloud.google.com/go/iam/apiv1/iampb"
)

// wandbRoles are granted on the bucket to W&B's service account: storage.admin is what W&B's checks need
// (they get 403 without it); W&B's Terraform grants objectAdmin too.
var wandbRoles = []string{"roles/storage.admin", "roles/storage.objectAdmin"}

func serviceAccountMember(email string) string { return "serviceAccount:" + email }

// hasMember tells whether a binding grants its role to member without a condition. IAM compares emails
// case-insensitively.
func hasMember(b *iampb.Binding, member string) bool {
	return b.Condition == nil && slices.ContainsFunc(b.Members, func(m string) bool { return strings.EqualFold(m, member) })
}

// missingRoles returns the roles of want that no unconditional binding grants to member. A conditional
// binding does not count: it may not apply to W&B's requests.
func missingRoles(bindings []*iampb.Binding, member string, want []string) []string {
	var missing []string
	for _, role := range want {
		if !slices.ContainsFunc(bindings, func(b *iampb.Binding) bool { return b.Role == role && hasMember(b, member) }) {
			missing = append(missing, role)
		}
	}
	return missing
}

// grantRoles returns bindings with every role of want granted to member, and the roles it added. The
// member joins the role's unconditional binding when there is one, else a new binding is added. Every
// other binding is kept as it is; bindings is not modified.
func grantRoles(bindings []*iampb.Binding, member string, want []string) (out []*iampb.Binding, added []string) {
	added = missingRoles(bindings, member, want)
	if len(added) == 0 {
		return bindings, nil
	}
	out = slices.Clone(bindings)
	for _, role := range added {
		i := slices.IndexFunc(out, func(b *iampb.Binding) bool { return b.Role == role && b.Condition == nil })
		if i < 0 {
			out = append(out, &iampb.Binding{Role: role, Members: []string{member}})
			continue
		}
		out[i] = &iampb.Binding{Role: role, Members: append(slices.Clone(out[i].Members), member)}
	}
	return out, added
}

// ensureIAM grants W&B's roles by read-modify-write of the policy with its etag (version 3, so that
// conditional bindings of others survive), once more if the policy changed in between.
func (e *ensurer) ensureIAM(ctx context.Context) error {
	h := e.bkt.IAM().V3()
	member := serviceAccountMember(e.f.principal)
	return retryRace(func(bool) error {
		p, err := h.Policy(ctx)
		if err != nil {
			return fmt.Errorf("get IAM policy of bucket %q: %w", e.name, err)
		}
		var added []string
		if p.Bindings, added = grantRoles(p.Bindings, member, wandbRoles); len(added) == 0 {
			return nil
		}
		if err := h.SetPolicy(ctx, p); err != nil {
			return fmt.Errorf("set IAM policy of bucket %q: %w", e.name, err)
		}
		e.changed("iam", "granted %s on the bucket to %s", strings.Join(added, ", "), member)
		return nil
	})
}
