// Package gcsbucket provisions and verifies W&B team buckets on Google Cloud Storage (provider "gcs")
// with cloud.google.com/go/storage.
//
// A new bucket is inserted with every setting of W&B's recipe at once (location, uniform bucket-level
// access, public access prevention, Google-managed encryption, soft delete, CORS, ownership labels), then
// W&B's service account is granted its roles. An existing bucket is read and patched in one request with
// only what differs, guarded by its metageneration; the IAM policy is read and written back with its etag,
// so bindings others add are never lost. A 412 from either race is retried once after a fresh read.
package gcsbucket

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"

	"github.com/byob-agent/byob-agent/bucketfactory"
	"github.com/byob-agent/byob-agent/team"
)

// W&B's service accounts, granted access to team buckets.
const (
	PrincipalMultiTenant = "wandb-integration@wandb-production.iam.gserviceaccount.com"
	PrincipalDedicated   = "deploy@wandb-production.iam.gserviceaccount.com"
)

// maxAttempts bounds the tries of one retryable request (the library's backoff is 1s doubling, jittered).
const maxAttempts = 4

// Soft delete retention GCS allows when it is on. W&B refuses a bucket with soft delete off.
const (
	MinSoftDeleteDays = 7
	MaxSoftDeleteDays = 90
)

// Options configures a Factory for one storage profile.
type Options struct {
	Project  string // project new buckets are created in; required only to create one
	Location string // default location; a bucket's Storage.Region overrides it
	Endpoint string // JSON API endpoint, e.g. http://127.0.0.1:4443/storage/v1/ (tests); empty: Google's
	// CredentialsJSON is a service account key (secret). It signs requests and makes the storage address;
	// nil: Application Default Credentials, and Address fails.
	CredentialsJSON []byte
	// WithoutAuthentication sends requests unsigned (tests only). CredentialsJSON still makes the address.
	WithoutAuthentication bool
	// Principal is W&B's service account email (PrincipalMultiTenant, PrincipalDedicated or your own).
	Principal string
	// SoftDeleteDays is the soft delete retention every bucket gets: MinSoftDeleteDays to MaxSoftDeleteDays.
	SoftDeleteDays int
	// HTTPClient sends every request as is (it must authenticate them itself); nil: the library's.
	HTTPClient *http.Client
}

// Factory implements bucketfactory.Factory for one GCS profile. It is safe for concurrent use.
type Factory struct {
	client     *storage.Client
	project    string
	location   string
	endpoint   string
	principal  string
	softDelete time.Duration
	// key is a pointer so that printing a Factory by accident shows an address, not the private key.
	key *serviceAccountKey // nil without CredentialsJSON
}

var _ bucketfactory.Factory = (*Factory)(nil)

// New builds a Factory. It makes no request.
func New(ctx context.Context, o Options) (*Factory, error) {
	switch {
	case o.SoftDeleteDays == 0:
		return nil, fmt.Errorf("gcs soft delete days is 0 (off): W&B refuses buckets without soft delete; set %d to %d", MinSoftDeleteDays, MaxSoftDeleteDays)
	case o.SoftDeleteDays < MinSoftDeleteDays || o.SoftDeleteDays > MaxSoftDeleteDays:
		return nil, fmt.Errorf("gcs soft delete days %d is out of range: GCS allows %d to %d", o.SoftDeleteDays, MinSoftDeleteDays, MaxSoftDeleteDays)
	case !strings.Contains(o.Principal, "@"):
		return nil, fmt.Errorf("gcs needs W&B's service account email as principal (e.g. %s), got %q", PrincipalMultiTenant, o.Principal)
	}
	f := &Factory{
		project:    o.Project,
		location:   o.Location,
		endpoint:   o.Endpoint,
		principal:  o.Principal,
		softDelete: time.Duration(o.SoftDeleteDays) * 24 * time.Hour,
	}
	var copts []option.ClientOption
	if o.CredentialsJSON != nil {
		key, err := parseServiceAccountKey(o.CredentialsJSON)
		if err != nil {
			return nil, err
		}
		f.key = key
	}
	switch {
	case o.HTTPClient != nil:
		copts = append(copts, option.WithHTTPClient(o.HTTPClient))
	case o.WithoutAuthentication:
		copts = append(copts, option.WithoutAuthentication())
	case o.CredentialsJSON != nil:
		copts = append(copts, option.WithAuthCredentialsJSON(option.ServiceAccount, o.CredentialsJSON))
	}
	if o.Endpoint != "" {
		copts = append(copts, option.WithEndpoint(o.Endpoint))
	}
	client, err := storage.NewClient(ctx, copts...)
	if err != nil {
		return nil, fmt.Errorf("create GCS client: %w", err)
	}
	// The library otherwise retries until the context ends: a bucket that keeps failing would hold its
	// worker for good instead of failing the team, which is then retried later.
	client.SetRetry(storage.WithMaxAttempts(maxAttempts))
	f.client = client
	return f, nil
}

// Close releases the client's resources.
func (f *Factory) Close() error { return f.client.Close() }

var labelValueRE = regexp.MustCompile(`^[a-z0-9_-]{1,63}$`)

// checkBucket checks b against the profile before any request is made.
func (f *Factory) checkBucket(b bucketfactory.Bucket) error {
	if err := b.Validate(team.ProviderGCS); err != nil {
		return err
	}
	st := b.Storage
	if key, value := b.Owner(); !labelValueRE.MatchString(value) {
		return fmt.Errorf("bucket %q: %q cannot be the value of GCS label %s: use 1 to 63 lowercase letters, digits, '_' or '-'", st.Bucket, value, key)
	}
	if st.Endpoint != "" && st.Endpoint != f.endpoint {
		return fmt.Errorf("bucket %q wants endpoint %s but this gcs profile uses %s", st.Bucket, st.Endpoint, orDefault(f.endpoint))
	}
	if f.bucketLocation(b) == "" {
		return fmt.Errorf("bucket %q has no location: set the profile's location or the team's region", st.Bucket)
	}
	return nil
}

func (f *Factory) bucketLocation(b bucketfactory.Bucket) string {
	if b.Storage.Region != "" {
		return b.Storage.Region
	}
	return f.location
}

// wantLabels are the ownership labels the bucket must carry.
func wantLabels(b bucketfactory.Bucket) map[string]string {
	key, value := b.Owner()
	return map[string]string{bucketfactory.TagManagedBy: bucketfactory.TagManagedByValue, key: value}
}

// ownerMarks are the labels that say which team or profile a bucket belongs to.
var ownerMarks = []string{bucketfactory.TagTeam, bucketfactory.TagShared}

// foreignOwner returns the first ownership label on the bucket that is not b's, "" when there is none.
func foreignOwner(labels map[string]string, b bucketfactory.Bucket) string {
	key, value := b.Owner()
	for _, k := range ownerMarks {
		if v, ok := labels[k]; ok && (k != key || v != value) {
			return k + "=" + v
		}
	}
	return ""
}

// Ensure creates the bucket if absent and applies W&B's recipe, writing only what differs.
func (f *Factory) Ensure(ctx context.Context, b bucketfactory.Bucket, opts bucketfactory.EnsureOptions) ([]bucketfactory.Change, error) {
	if err := f.checkBucket(b); err != nil {
		return nil, err
	}
	e := &ensurer{f: f, b: b, name: b.Storage.Bucket, bkt: f.client.Bucket(b.Storage.Bucket)}
	attrs, err := e.readOrCreate(ctx)
	if err != nil {
		return e.changes, err
	}
	if attrs != nil { // it existed: make its settings right
		if err := e.ensureSettings(ctx, attrs, opts); err != nil {
			return e.changes, err
		}
	}
	if err := e.ensureIAM(ctx); err != nil {
		return e.changes, err
	}
	return e.changes, nil
}

// ensurer carries one Ensure call.
type ensurer struct {
	f       *Factory
	b       bucketfactory.Bucket
	name    string
	bkt     *storage.BucketHandle
	changes []bucketfactory.Change
}

func (e *ensurer) changed(setting, format string, args ...any) {
	e.changes = append(e.changes, bucketfactory.Change{Setting: setting, Detail: fmt.Sprintf(format, args...)})
}

func (e *ensurer) ownershipError(format string, args ...any) error {
	return &bucketfactory.OwnershipError{Bucket: e.name, Reason: fmt.Sprintf(format, args...)}
}

// readOrCreate returns the bucket's attributes, or nil after creating it with the whole recipe.
func (e *ensurer) readOrCreate(ctx context.Context) (*storage.BucketAttrs, error) {
	attrs, err := readAttrs(ctx, e.bkt, e.name)
	if err == nil || !errors.Is(err, storage.ErrBucketNotExist) {
		return attrs, err
	}
	if e.f.project == "" {
		return nil, fmt.Errorf("bucket %q does not exist and the gcs profile names no project to create it in", e.name)
	}
	loc := e.f.bucketLocation(e.b)
	err = e.bkt.Create(ctx, e.f.project, &storage.BucketAttrs{
		Location:                 loc,
		Labels:                   wantLabels(e.b),
		UniformBucketLevelAccess: storage.UniformBucketLevelAccess{Enabled: true},
		PublicAccessPrevention:   storage.PublicAccessPreventionEnforced,
		SoftDeletePolicy:         &storage.SoftDeletePolicy{RetentionDuration: e.f.softDelete},
		CORS:                     []storage.CORS{wandbCORS()},
		// No Encryption: Google-managed keys, as W&B requires.
	})
	if err == nil {
		k, v := e.b.Owner()
		e.changed("create", "created bucket %q in project %s, location %s, with uniform access, public access prevention enforced, Google-managed encryption, soft delete %s, W&B's CORS entry and labels %s=%s, %s=%s",
			e.name, e.f.project, loc, days(e.f.softDelete), bucketfactory.TagManagedBy, bucketfactory.TagManagedByValue, k, v)
		return nil, nil
	}
	if httpStatus(err) != http.StatusConflict {
		return nil, fmt.Errorf("create bucket %q in project %s: %w", e.name, e.f.project, err)
	}
	// The name is taken: by a concurrent Ensure of ours (then it reads fine and its labels decide), or by
	// another project (then it cannot be read).
	attrs, err = readAttrs(ctx, e.bkt, e.name)
	if errors.Is(err, storage.ErrBucketNotExist) {
		return nil, fmt.Errorf("create bucket %q: the name is taken, yet the bucket cannot be found: retry later", e.name)
	}
	return attrs, err
}

// readAttrs reads the bucket. A 403 means another project owns the name (or these credentials may not
// read the bucket): either way it is not ours to use.
func readAttrs(ctx context.Context, bkt *storage.BucketHandle, name string) (*storage.BucketAttrs, error) {
	attrs, err := bkt.Attrs(ctx)
	switch {
	case err == nil:
		return attrs, nil
	case errors.Is(err, storage.ErrBucketNotExist):
		return nil, err
	case httpStatus(err) == http.StatusForbidden:
		return nil, &bucketfactory.OwnershipError{Bucket: name, Reason: "access to it is denied: another project owns the name, or these credentials may not read it"}
	}
	return nil, fmt.Errorf("read bucket %q: %w", name, err)
}

// ensureSettings checks that an existing bucket is ours and in the right place, then patches whatever
// differs in one request guarded by the metageneration it read.
func (e *ensurer) ensureSettings(ctx context.Context, attrs *storage.BucketAttrs, opts bucketfactory.EnsureOptions) error {
	return retryRace(func(retry bool) error {
		if retry {
			var err error
			if attrs, err = readAttrs(ctx, e.bkt, e.name); err != nil {
				return err
			}
		}
		update, pending, err := e.planSettings(attrs, opts)
		if err != nil || len(pending) == 0 {
			return err
		}
		if _, err := e.bkt.If(storage.BucketConditions{MetagenerationMatch: attrs.MetaGeneration}).Update(ctx, *update); err != nil {
			return fmt.Errorf("update settings of bucket %q: %w", e.name, err)
		}
		e.changes = append(e.changes, pending...)
		return nil
	})
}

// planSettings returns the update that makes attrs match the recipe and one Change per setting in it.
func (e *ensurer) planSettings(attrs *storage.BucketAttrs, opts bucketfactory.EnsureOptions) (*storage.BucketAttrsToUpdate, []bucketfactory.Change, error) {
	key, value := e.b.Owner()
	if owner := foreignOwner(attrs.Labels, e.b); owner != "" {
		return nil, nil, e.ownershipError("it is labelled %s", owner)
	}
	adopting := attrs.Labels[key] != value
	if adopting && !opts.AdoptUntagged {
		return nil, nil, e.ownershipError("it exists without the %s label and adopting unlabelled buckets is off", key)
	}
	if want := e.f.bucketLocation(e.b); !strings.EqualFold(attrs.Location, want) {
		return nil, nil, fmt.Errorf("bucket %q is in %s, not %s: a bucket cannot move; set the location to %s or give the team another bucket", e.name, attrs.Location, want, attrs.Location)
	}

	var (
		u       storage.BucketAttrsToUpdate
		pending []bucketfactory.Change
	)
	add := func(setting, format string, args ...any) {
		pending = append(pending, bucketfactory.Change{Setting: setting, Detail: fmt.Sprintf(format, args...)})
	}
	want := wantLabels(e.b)
	var set []string
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if attrs.Labels[k] != want[k] {
			u.SetLabel(k, want[k])
			set = append(set, k+"="+want[k])
		}
	}
	if len(set) > 0 {
		verb := "restored labels"
		if adopting {
			verb = "adopted unlabelled bucket: set labels"
		}
		add("labels", "%s %s", verb, strings.Join(set, ", "))
	}
	if !attrs.UniformBucketLevelAccess.Enabled {
		u.UniformBucketLevelAccess = &storage.UniformBucketLevelAccess{Enabled: true}
		add("uniform-access", "turned on uniform bucket-level access")
	}
	if attrs.PublicAccessPrevention != storage.PublicAccessPreventionEnforced {
		u.PublicAccessPrevention = storage.PublicAccessPreventionEnforced
		add("public-access-prevention", "enforced (was %s)", attrs.PublicAccessPrevention)
	}
	if k := kmsKey(attrs); k != "" {
		u.Encryption = &storage.BucketEncryption{} // clears the default key: Google-managed encryption
		add("encryption", "removed default KMS key %s: W&B needs Google-managed encryption", k)
	}
	if got := softDelete(attrs); got != e.f.softDelete {
		u.SoftDeletePolicy = &storage.SoftDeletePolicy{RetentionDuration: e.f.softDelete}
		add("soft-delete", "retention %s (was %s)", days(e.f.softDelete), days(got))
	}
	if merged, changed := mergeCORS(attrs.CORS); changed {
		u.CORS = merged
		add("cors", "added W&B's entry (%s), kept %d other entries", describeCORS(wandbCORS()), len(merged)-1)
	}
	return &u, pending, nil
}

func kmsKey(attrs *storage.BucketAttrs) string {
	if attrs.Encryption == nil {
		return ""
	}
	return attrs.Encryption.DefaultKMSKeyName
}

func softDelete(attrs *storage.BucketAttrs) time.Duration {
	if attrs.SoftDeletePolicy == nil {
		return 0
	}
	return attrs.SoftDeletePolicy.RetentionDuration
}

// days describes a soft delete retention.
func days(d time.Duration) string {
	switch {
	case d == 0:
		return "off"
	case d%(24*time.Hour) == 0:
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	}
	return fmt.Sprintf("%d s", int64(d/time.Second))
}

// retryRace runs attempt, and once more after a 412: someone changed the bucket or its policy between
// our read and our write, so the second attempt reads again and re-plans.
func retryRace(attempt func(retry bool) error) error {
	err := attempt(false)
	if httpStatus(err) == http.StatusPreconditionFailed {
		err = attempt(true)
	}
	return err
}

// httpStatus returns the HTTP status of a failed call, or 0 for no error or a transport error.
func httpStatus(err error) int {
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		return ge.Code
	}
	return 0
}

func orDefault(endpoint string) string {
	if endpoint == "" {
		return "Google's default endpoint"
	}
	return endpoint
}
