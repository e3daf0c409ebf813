package s3bucket

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/byob-agent/byob-agent/bucketfactory"
	"github.com/byob-agent/byob-agent/team"
)

// keyAlias names the team's key: the alias is how the agent finds it again.
func keyAlias(teamName string) string { return "alias/byob-agent-" + teamName }

// EnsureKey returns the team's KMS key, creating it (with W&B's key policy, ownership tags, an alias and
// yearly rotation) when it has none. The key policy and rotation of an existing key are repaired if they
// drifted. With recovering set, a key tagged for the team but never aliased (a crash between CreateKey
// and CreateAlias) is reused rather than a second one created.
func (f *Factory) EnsureKey(ctx context.Context, teamName string, recovering bool) (arn string, created bool, err error) {
	switch f.provider {
	case team.ProviderAWS:
	case team.ProviderCoreWeave:
		return "", false, fmt.Errorf("provider %q takes no KMS key: CoreWeave encrypts every object at rest", f.provider)
	default:
		return "", false, fmt.Errorf("provider %q has no KMS: configure SSE-KMS on the server or give no key", f.provider)
	}
	if err := team.ValidateName(teamName); err != nil {
		return "", false, err
	}
	alias := keyAlias(teamName)
	if arn, err = f.aliasedKey(ctx, alias); err != nil {
		return "", false, err
	}
	if arn == "" && recovering {
		if arn, err = f.findTaggedKey(ctx, teamName); err != nil {
			return "", false, err
		}
		if arn != "" {
			if err := f.createAlias(ctx, alias, arn); err != nil {
				return "", false, err
			}
		}
	}
	if arn == "" {
		if arn, err = f.createKey(ctx, teamName); err != nil {
			return "", false, err
		}
		if err := f.createAlias(ctx, alias, arn); err != nil {
			return "", false, err
		}
		created = true
	}
	if err := f.ensureKeySettings(ctx, arn); err != nil {
		return "", false, err
	}
	return arn, created, nil
}

// aliasedKey returns the ARN of the key the alias points to, "" if the alias does not exist. A key that
// is disabled or pending deletion is an error: W&B could not use it, and re-enabling it is an operator's
// decision.
func (f *Factory) aliasedKey(ctx context.Context, alias string) (string, error) {
	out, err := f.kms.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(alias)})
	if apiCode(err) == "NotFoundException" {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("describe KMS key %s: %w", alias, err)
	}
	md := out.KeyMetadata
	if md.KeyState != kmstypes.KeyStateEnabled {
		return "", fmt.Errorf("KMS key %s (%s) is %s: W&B cannot use it; an operator must enable it or remove the alias", aws.ToString(md.Arn), alias, md.KeyState)
	}
	return aws.ToString(md.Arn), nil
}

// findTaggedKey returns an enabled customer key tagged for the team, "" if there is none.
func (f *Factory) findTaggedKey(ctx context.Context, teamName string) (string, error) {
	pages := kms.NewListKeysPaginator(f.kms, &kms.ListKeysInput{})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return "", fmt.Errorf("list KMS keys: %w", err)
		}
		for _, k := range page.Keys {
			tags, err := f.kms.ListResourceTags(ctx, &kms.ListResourceTagsInput{KeyId: k.KeyId})
			if err != nil {
				return "", fmt.Errorf("list tags of KMS key %s: %w", aws.ToString(k.KeyArn), err)
			}
			if !taggedFor(tags.Tags, teamName) {
				continue
			}
			out, err := f.kms.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: k.KeyId})
			if err != nil {
				return "", fmt.Errorf("describe KMS key %s: %w", aws.ToString(k.KeyArn), err)
			}
			if out.KeyMetadata.KeyState == kmstypes.KeyStateEnabled {
				return aws.ToString(out.KeyMetadata.Arn), nil
			}
		}
	}
	return "", nil
}

func taggedFor(tags []kmstypes.Tag, teamName string) bool {
	want := ownershipTags(bucketfactory.TagTeam, teamName)
	found := 0
	for _, t := range tags {
		if v, ok := want[aws.ToString(t.TagKey)]; ok && v == aws.ToString(t.TagValue) {
			found++
		}
	}
	return found == len(want)
}

func (f *Factory) createKey(ctx context.Context, teamName string) (string, error) {
	account, err := f.account(ctx)
	if err != nil {
		return "", err
	}
	tags := []kmstypes.Tag{
		{TagKey: aws.String(bucketfactory.TagManagedBy), TagValue: aws.String(bucketfactory.TagManagedByValue)},
		{TagKey: aws.String(bucketfactory.TagTeam), TagValue: aws.String(teamName)},
	}
	out, err := f.kms.CreateKey(ctx, &kms.CreateKeyInput{
		Description: aws.String(fmt.Sprintf("byob-agent: SSE-KMS key of W&B team %s", teamName)),
		KeyUsage:    kmstypes.KeyUsageTypeEncryptDecrypt,
		KeySpec:     kmstypes.KeySpecSymmetricDefault,
		Policy:      aws.String(newPolicy(keyPolicyStatements(f.partition, account, f.principal))),
		Tags:        tags,
	})
	if err != nil {
		return "", fmt.Errorf("create KMS key for team %q: %w", teamName, err)
	}
	return aws.ToString(out.KeyMetadata.Arn), nil
}

func (f *Factory) createAlias(ctx context.Context, alias, arn string) error {
	if _, err := f.kms.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String(alias), TargetKeyId: aws.String(arn)}); err != nil {
		return fmt.Errorf("create KMS alias %s for key %s: %w", alias, arn, err)
	}
	return nil
}

// ensureKeySettings puts W&B's statements into the key policy and turns rotation on, each only if needed.
func (f *Factory) ensureKeySettings(ctx context.Context, arn string) error {
	// The root principal is the key's own account, so no STS call is needed for an existing key.
	want := keyPolicyStatements(f.partition, arnAccount(arn), f.principal)
	pol, err := f.kms.GetKeyPolicy(ctx, &kms.GetKeyPolicyInput{KeyId: aws.String(arn), PolicyName: aws.String("default")})
	if err != nil {
		return fmt.Errorf("get policy of KMS key %s: %w", arn, err)
	}
	merged, changed, err := mergeStatements(aws.ToString(pol.Policy), want)
	if err != nil {
		return fmt.Errorf("merge W&B's statements into the policy of KMS key %s: %w", arn, err)
	}
	if changed {
		if _, err := f.kms.PutKeyPolicy(ctx, &kms.PutKeyPolicyInput{
			KeyId: aws.String(arn), PolicyName: aws.String("default"), Policy: aws.String(merged),
		}); err != nil {
			return fmt.Errorf("put policy on KMS key %s: %w", arn, err)
		}
	}
	rot, err := f.kms.GetKeyRotationStatus(ctx, &kms.GetKeyRotationStatusInput{KeyId: aws.String(arn)})
	if err != nil {
		return fmt.Errorf("get rotation status of KMS key %s: %w", arn, err)
	}
	if !rot.KeyRotationEnabled {
		if _, err := f.kms.EnableKeyRotation(ctx, &kms.EnableKeyRotationInput{KeyId: aws.String(arn)}); err != nil {
			return fmt.Errorf("enable rotation of KMS key %s: %w", arn, err)
		}
	}
	return nil
}

// account returns the account that administers created keys: from Options, else asked of STS once.
func (f *Factory) account(ctx context.Context) (string, error) {
	f.accountMu.Lock()
	defer f.accountMu.Unlock()
	if f.accountID != "" {
		return f.accountID, nil
	}
	out, err := f.sts.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return "", fmt.Errorf("ask STS for the account id (or set it in the profile): %w", err)
	}
	f.accountID = aws.ToString(out.Account)
	return f.accountID, nil
}
