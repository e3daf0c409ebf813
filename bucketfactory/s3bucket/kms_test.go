package s3bucket

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/byob-agent/byob-agent/bucketfactory"
	"github.com/byob-agent/byob-agent/team"
)

func TestEnsureKey(t *testing.T) {
	env := s3Env(t)
	ctx := t.Context()
	f := newTestFactory(t, env, team.ProviderAWS)
	admin := env.KMSClient(ctx)
	teamName := uniqueName(t)

	arn, created, err := f.EnsureKey(ctx, teamName, false)
	if err != nil || !created {
		t.Fatalf("EnsureKey = %q, created %v, %v; want a new key", arn, created, err)
	}
	checkKey(t, admin, teamName, arn)

	t.Run("second call changes nothing", func(t *testing.T) {
		env.ResetCounts()
		again, created, err := f.EnsureKey(ctx, teamName, false)
		if err != nil || created || again != arn {
			t.Fatalf("EnsureKey again = %q, created %v, %v; want %q, not created", again, created, err, arn)
		}
		if n := env.KMSMutations(); n != 0 {
			t.Errorf("second EnsureKey made %d mutating KMS calls, want 0: %v", n, env.KMSCounts())
		}
	})

	t.Run("drifted key policy is repaired", func(t *testing.T) {
		rootOnly := newPolicy(keyPolicyStatements("aws", env.AccountID, testPrincipal)[:1])
		if _, err := admin.PutKeyPolicy(ctx, &kms.PutKeyPolicyInput{KeyId: aws.String(arn), PolicyName: aws.String("default"), Policy: aws.String(rootOnly)}); err != nil {
			t.Fatal(err)
		}
		env.ResetCounts()
		if _, _, err := f.EnsureKey(ctx, teamName, false); err != nil {
			t.Fatal(err)
		}
		if got := env.KMSCounts()["TrentService.PutKeyPolicy"]; got != 1 || env.KMSMutations() != 1 {
			t.Errorf("EnsureKey made %v, want exactly one PutKeyPolicy", env.KMSCounts())
		}
		checkKey(t, admin, teamName, arn)
	})

	t.Run("recovering reuses a tagged key without alias", func(t *testing.T) {
		lost := uniqueName(t)
		out, err := admin.CreateKey(ctx, &kms.CreateKeyInput{Tags: []kmstypes.Tag{
			{TagKey: aws.String(bucketfactory.TagManagedBy), TagValue: aws.String(bucketfactory.TagManagedByValue)},
			{TagKey: aws.String(bucketfactory.TagTeam), TagValue: aws.String(lost)},
		}})
		if err != nil {
			t.Fatal(err)
		}
		env.ResetCounts()
		got, created, err := f.EnsureKey(ctx, lost, true)
		if err != nil || created || got != aws.ToString(out.KeyMetadata.Arn) {
			t.Fatalf("EnsureKey(recovering) = %q, created %v, %v; want the tagged key %s", got, created, err, aws.ToString(out.KeyMetadata.Arn))
		}
		if n := env.KMSCounts()["TrentService.CreateKey"]; n != 0 {
			t.Errorf("recovering EnsureKey created %d key(s)", n)
		}
		checkKey(t, admin, lost, got)
	})

	for _, provider := range []string{team.ProviderS3Compatible, team.ProviderCoreWeave} {
		t.Run(provider+" has no keys", func(t *testing.T) {
			f := newTestFactory(t, env, provider)
			env.ResetCounts()
			if _, _, err := f.EnsureKey(ctx, teamName, false); err == nil {
				t.Errorf("EnsureKey on a %s profile succeeded", provider)
			}
			if n := len(env.KMSCounts()); n != 0 {
				t.Errorf("EnsureKey on a %s profile made KMS calls: %v", provider, env.KMSCounts())
			}
		})
	}
}

// checkKey asserts that the team's alias names arn and that the key has the ownership tags, W&B's key
// policy and rotation on.
func checkKey(t *testing.T, admin *kms.Client, teamName, arn string) {
	t.Helper()
	ctx := t.Context()
	d, err := admin.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(keyAlias(teamName))})
	if err != nil {
		t.Fatalf("describe %s: %v", keyAlias(teamName), err)
	}
	if got := aws.ToString(d.KeyMetadata.Arn); got != arn {
		t.Errorf("%s names %s, want %s", keyAlias(teamName), got, arn)
	}
	tags, err := admin.ListResourceTags(ctx, &kms.ListResourceTagsInput{KeyId: aws.String(arn)})
	if err != nil {
		t.Fatal(err)
	}
	if !taggedFor(tags.Tags, teamName) {
		t.Errorf("key %s is not tagged for team %s", arn, teamName)
	}
	pol, err := admin.GetKeyPolicy(ctx, &kms.GetKeyPolicyInput{KeyId: aws.String(arn), PolicyName: aws.String("default")})
	if err != nil {
		t.Fatal(err)
	}
	if _, changed, err := mergeStatements(aws.ToString(pol.Policy), keyPolicyStatements("aws", arnAccount(arn), testPrincipal)); err != nil || changed {
		t.Errorf("key policy %s lacks W&B's statements (err %v)", aws.ToString(pol.Policy), err)
	}
	rot, err := admin.GetKeyRotationStatus(ctx, &kms.GetKeyRotationStatusInput{KeyId: aws.String(arn)})
	if err != nil {
		t.Fatal(err)
	}
	if !rot.KeyRotationEnabled {
		t.Errorf("rotation of key %s is off", arn)
	}
}
