// Package testenv starts real storage backends on 127.0.0.1 for tests and for the demo, each behind a
// counting reverse proxy: SeaweedFS (`weed mini`) as the S3 server, with SSE-KMS wired to a local AWS KMS
// (kmsd, a local-kms wrapper), and Azurite's Blob service. It also starts a PostgreSQL 15 server of its
// own (StartPostgres, from Debian's package postgresql) for the state's PostgreSQL backend.
//
// Through the proxies a test can assert how many (mutating) calls the code under test made, answer
// requests in a backend's place (a Fault hook, or an Injector such as Faults, which injects random
// failures), and store bucket policies SeaweedFS refuses (S3Env.InterceptPolicies). Shared starts one
// backend per test binary. For tests of the outbound transport it also has a CA of its own, TLS fronts
// and an HTTP CONNECT proxy. It does not depend on package testing: cmd/devenv uses it too.
package testenv

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

const modulePath = "github.com/byob-agent/byob-agent"

// RepoRoot returns the directory of the go.mod of module github.com/byob-agent/byob-agent, searching
// upwards from the working directory (a test runs in its package's directory), then from the running
// executable (bin/devenv run from elsewhere).
func RepoRoot() (string, error) {
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if exe, err := os.Executable(); err == nil {
		starts = append(starts, filepath.Dir(exe))
	}
	for _, start := range starts {
		for dir := start; ; dir = filepath.Dir(dir) {
			if readModulePath(filepath.Join(dir, "go.mod")) == modulePath {
				return dir, nil
			}
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	return "", fmt.Errorf("no go.mod of module %s above the working directory or the executable (%s)", modulePath, strings.Join(starts, ", "))
}

// readModulePath returns the module path declared in a go.mod file, or "" if there is none.
func readModulePath(gomod string) string {
	f, err := os.Open(gomod)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`)
		}
	}
	return ""
}

// Binary returns the path of a test backend built by `make tools` into RepoRoot()/bin.
func Binary(name string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	p := filepath.Join(root, "bin", name)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s not found: run `make tools`", p)
	}
	return p, nil
}

// S3Options configures StartS3. The zero value is ready to use.
type S3Options struct {
	Dir       string    // work directory for the backends' data; empty: a temporary one, removed by Close
	Logs      io.Writer // receives the backends' output; nil: discarded (the tail still appears in start errors)
	Region    string    // region of the S3 server and of KMS key ARNs; default us-east-1
	AccountID string    // account in KMS key ARNs; default 111122223333
}

// S3Env is a running SeaweedFS with SSE-KMS backed by kmsd. Endpoint and KMSEndpoint are the counting
// proxies; clients must use path-style addressing.
type S3Env struct {
	Endpoint, Region, AccessKey, SecretKey, KMSEndpoint, AccountID string
	// OtherAccessKey and OtherSecretKey are a second S3 identity, standing for another account:
	// a bucket it creates is owned by someone else as far as AccessKey is concerned.
	OtherAccessKey, OtherSecretKey string

	dir, tempDir string // tempDir is removed by Close ("" when the caller gave Dir)
	s3Direct     string // SeaweedFS itself, bypassing the proxy
	kmsDirect    string // kmsd itself
	kmsd, weed   *child
	s3p, kmsp    *countingProxy
	policies     policyStore // see InterceptPolicies
}

// weedStartAttempts bounds retries of `weed mini`: its ports are picked free but are only bound a moment
// later, so another process can take one in between.
const weedStartAttempts = 3

// StartS3 starts kmsd and `weed mini` with their proxies and returns when S3 answers. ctx bounds the
// start-up only; the backends run until Close.
func StartS3(ctx context.Context, o S3Options) (_ *S3Env, err error) {
	if o.Region == "" {
		o.Region = "us-east-1"
	}
	if o.AccountID == "" {
		o.AccountID = "111122223333"
	}
	logs := io.Discard
	if o.Logs != nil {
		logs = &lockedWriter{w: o.Logs}
	}
	kmsdBin, err := Binary("kmsd")
	if err != nil {
		return nil, err
	}
	weedBin, err := Binary("weed")
	if err != nil {
		return nil, err
	}
	e := &S3Env{Region: o.Region, AccountID: o.AccountID, dir: o.Dir}
	defer func() {
		if err != nil {
			err = errors.Join(err, e.Close())
		}
	}()
	if e.dir == "" {
		if e.dir, err = os.MkdirTemp("", "byob-testenv-"); err != nil {
			return nil, fmt.Errorf("create work directory: %w", err)
		}
		e.tempDir = e.dir
	}
	e.AccessKey, e.SecretKey = newKeyPair()
	e.OtherAccessKey, e.OtherSecretKey = newKeyPair()
	if err := e.startKMS(ctx, kmsdBin, logs); err != nil {
		return nil, err
	}
	if err := e.startWeed(ctx, weedBin, logs); err != nil {
		return nil, err
	}
	if e.s3p, err = startProxy(e.s3Direct, s3Operation, logs); err != nil {
		return nil, err
	}
	e.Endpoint = e.s3p.url
	return e, nil
}

func (e *S3Env) startKMS(ctx context.Context, bin string, logs io.Writer) error {
	dataDir := filepath.Join(e.dir, "kms")
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return fmt.Errorf("create kmsd data directory: %w", err)
	}
	announce := &firstLine{rest: logs, line: make(chan string, 1)}
	c, err := startChild("kmsd", bin, []string{
		"-addr", "127.0.0.1:0", "-data", dataDir, "-region", e.Region, "-account", e.AccountID,
	}, announce, logs)
	if err != nil {
		return err
	}
	e.kmsd = c
	select {
	case line := <-announce.line:
		addr, ok := strings.CutPrefix(line, "listening on ")
		if !ok {
			return fmt.Errorf("kmsd announced %q, want \"listening on ADDR\"", line)
		}
		e.kmsDirect = "http://" + addr
	case <-c.done:
		return c.exitError()
	case <-ctx.Done():
		return fmt.Errorf("wait for kmsd to listen: %w", ctx.Err())
	}
	if e.kmsp, err = startProxy(e.kmsDirect, kmsOperation, logs); err != nil {
		return err
	}
	e.KMSEndpoint = e.kmsp.url
	return nil
}

func (e *S3Env) startWeed(ctx context.Context, bin string, logs io.Writer) error {
	weedDir := filepath.Join(e.dir, "weed")
	if err := os.MkdirAll(weedDir, 0o755); err != nil {
		return fmt.Errorf("create weed data directory: %w", err)
	}
	confPath := filepath.Join(e.dir, "s3.json")
	if err := os.WriteFile(confPath, e.s3Config(), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", confPath, err)
	}
	var errs []error
	for range weedStartAttempts {
		err := e.startWeedOnce(ctx, bin, weedDir, confPath, logs)
		if err == nil {
			return nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return fmt.Errorf("start weed mini: %w", errors.Join(errs...))
}

func (e *S3Env) startWeedOnce(ctx context.Context, bin, dir, conf string, logs io.Writer) error {
	// Every port is given explicitly: weed mini otherwise falls back to fixed defaults, and two instances
	// (two test binaries at once) would collide. The Iceberg, Lance and legacy admin ports are turned off.
	names := []string{"s3.port", "s3.port.grpc", "master.port", "master.port.grpc", "volume.port",
		"volume.port.grpc", "filer.port", "filer.port.grpc", "admin.port", "admin.port.grpc", "webdav.port"}
	ports, err := freePorts(len(names))
	if err != nil {
		return err
	}
	args := []string{"mini", "-dir=" + dir, "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-s3.config=" + conf,
		"-admin.ui=false", "-webdav=false", "-master.telemetry=false",
		// Every bucket is a collection with volumes of its own, and mini sizes its volume count from the
		// free disk at 1 GiB a volume: ~45 buckets on a 50 GiB disk, after which writes fail with 500.
		// Volumes are not preallocated, so many small ones cost nothing.
		"-master.volumeSizeLimitMB=32", "-volume.max=4000",
		"-s3.port.iceberg=0", "-s3.port.lance=0", "-admin.port.legacy=0"}
	for i, n := range names {
		args = append(args, fmt.Sprintf("-%s=%d", n, ports[i]))
	}
	c, err := startChild("weed", bin, args, nil, logs)
	if err != nil {
		return err
	}
	direct := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	if err := waitForS3(ctx, c, newS3Client(direct, e.Region, e.AccessKey, e.SecretKey)); err != nil {
		c.stop()
		return err
	}
	e.weed, e.s3Direct = c, direct
	return nil
}

// waitForS3 polls until S3 lists buckets: the gateway answers only once master, volume and filer are up
// (about 4 s).
func waitForS3(ctx context.Context, c *child, client *s3.Client) error {
	return c.waitReady(ctx, "S3", 200*time.Millisecond, func(ctx context.Context) error {
		_, err := client.ListBuckets(ctx, &s3.ListBucketsInput{})
		return err
	})
}

// seaweedKMSAccessKey is the access key SeaweedFS signs its KMS calls with.
const seaweedKMSAccessKey = "testenv"

// s3Config is SeaweedFS's s3.json: two identities and an AWS-type KMS provider pointing at kmsd through
// its proxy (so SeaweedFS's own KMS calls are counted and can be faulted too). local-kms ignores the
// credentials, but the provider requires some.
func (e *S3Env) s3Config() []byte {
	identity := func(name, ak, sk string) map[string]any {
		return map[string]any{
			"name":        name,
			"credentials": []map[string]string{{"accessKey": ak, "secretKey": sk}},
			"actions":     []string{"Admin", "Read", "List", "Tagging", "Write"},
		}
	}
	conf := map[string]any{
		"identities": []any{
			identity("byob-admin", e.AccessKey, e.SecretKey),
			identity("other-account", e.OtherAccessKey, e.OtherSecretKey),
		},
		"kms": map[string]any{
			"default_provider": "kmsd",
			"providers": map[string]any{
				"kmsd": map[string]any{
					"type": "aws", "region": e.Region, "endpoint": e.KMSEndpoint,
					"access_key": seaweedKMSAccessKey, "secret_key": "testenv",
				},
			},
		},
	}
	b, err := json.MarshalIndent(conf, "", "  ")
	if err != nil { // maps of strings always marshal
		panic(fmt.Sprintf("testenv: marshal s3.json: %v", err))
	}
	return b
}

// Close stops the backends and proxies and removes the temporary work directory. It is safe to call on
// a partly started environment.
func (e *S3Env) Close() error {
	var errs []error
	for _, p := range []*countingProxy{e.s3p, e.kmsp} {
		if p != nil {
			errs = append(errs, p.close())
		}
	}
	for _, c := range []*child{e.weed, e.kmsd} {
		if c != nil {
			c.stop()
		}
	}
	if e.tempDir != "" {
		if err := os.RemoveAll(e.tempDir); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", e.tempDir, err))
		}
	}
	return errors.Join(errs...)
}

// S3Counts returns the requests the S3 proxy saw since the last reset, by operation: "METHOD level" with
// level service, bucket or object ("HEAD bucket", "PUT object"), or "METHOD ?sub" for a bucket
// sub-resource ("PUT ?cors", "GET ?tagging"), "METHOD object?sub" for an object's.
func (e *S3Env) S3Counts() map[string]int { return e.s3p.snapshot() }

// S3Mutations returns how many PUT, POST and DELETE requests the S3 proxy saw since the last reset.
func (e *S3Env) S3Mutations() int { return sumIf(e.S3Counts(), isS3Mutation) }

// KMSCounts returns the requests the KMS proxy saw since the last reset, by X-Amz-Target
// ("TrentService.CreateKey"). SeaweedFS's own data-key calls are included.
func (e *S3Env) KMSCounts() map[string]int { return e.kmsp.snapshot() }

// KMSMutations returns how many KMS requests that change keys, aliases, policies or tags the proxy saw
// since the last reset.
func (e *S3Env) KMSMutations() int { return sumIf(e.KMSCounts(), isKMSMutation) }

// ResetCounts zeroes both proxies' counters.
func (e *S3Env) ResetCounts() {
	e.s3p.reset()
	e.kmsp.reset()
}

// SetS3Fault installs (nil: removes) a fault hook on the S3 proxy.
func (e *S3Env) SetS3Fault(f Fault) { e.s3p.setFault(f) }

// SetKMSFault installs (nil: removes) a fault hook on the KMS proxy.
func (e *S3Env) SetKMSFault(f Fault) { e.kmsp.setFault(f) }

// SetS3Injector installs (nil: removes) an injector on the S3 proxy, after any Fault hook. Requests it
// fails are counted like the others.
func (e *S3Env) SetS3Injector(i Injector) { e.s3p.setInjector(i) }

// SetKMSInjector installs (nil: removes) an injector on the KMS proxy, after any Fault hook. SeaweedFS's
// own KMS calls pass through it too: see IsSeaweedKMSCall.
func (e *S3Env) SetKMSInjector(i Injector) { e.kmsp.setInjector(i) }

// IsSeaweedKMSCall tells whether a request to the KMS proxy comes from SeaweedFS itself (data keys for
// SSE-KMS objects) rather than from a client: SeaweedFS signs with the credentials of s3Config.
func IsSeaweedKMSCall(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Authorization"), "Credential="+seaweedKMSAccessKey+"/")
}

func sumIf(counts map[string]int, keep func(string) bool) int {
	n := 0
	for op, c := range counts {
		if keep(op) {
			n += c
		}
	}
	return n
}

// S3Client returns an admin client that talks to SeaweedFS directly: its calls are neither counted nor
// faulted, so tests can arrange and inspect state without disturbing their assertions. Building it does
// no I/O; the context is taken for symmetry with the SDK's constructors.
func (e *S3Env) S3Client(context.Context) *s3.Client {
	return newS3Client(e.s3Direct, e.Region, e.AccessKey, e.SecretKey)
}

// DirectEndpoint is SeaweedFS's own S3 endpoint, bypassing the counting proxy (as S3Client does): for
// a caller with a proxy of its own in front (the benchmark), so requests do not take two hops.
func (e *S3Env) DirectEndpoint() string { return e.s3Direct }

// OtherS3Client is S3Client for the second identity (another account).
func (e *S3Env) OtherS3Client(context.Context) *s3.Client {
	return newS3Client(e.s3Direct, e.Region, e.OtherAccessKey, e.OtherSecretKey)
}

// KMSClient returns a client that talks to kmsd directly (not counted, not faulted).
func (e *S3Env) KMSClient(context.Context) *kms.Client {
	return kms.New(kms.Options{
		Region:       e.Region,
		BaseEndpoint: aws.String(e.kmsDirect),
		Credentials:  credentials.NewStaticCredentialsProvider("testenv", "testenv", ""),
	})
}

// CreateKey creates a symmetric customer key in kmsd and returns its ARN.
func (e *S3Env) CreateKey(ctx context.Context) (string, error) {
	out, err := e.KMSClient(ctx).CreateKey(ctx, &kms.CreateKeyInput{
		KeyUsage:    kmstypes.KeyUsageTypeEncryptDecrypt,
		KeySpec:     kmstypes.KeySpecSymmetricDefault,
		Description: aws.String("testenv key"),
	})
	if err != nil {
		return "", fmt.Errorf("create KMS key: %w", err)
	}
	return aws.ToString(out.KeyMetadata.Arn), nil
}

func newS3Client(endpoint, region, accessKey, secretKey string) *s3.Client {
	return s3.New(s3.Options{
		Region:       region,
		BaseEndpoint: aws.String(endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(accessKey, secretKey, ""),
	})
}

// newKeyPair returns fresh random S3 credentials, so that a demo environment has no well-known keys.
func newKeyPair() (accessKey, secretKey string) {
	return rand.Text()[:20], rand.Text() + rand.Text()[:14]
}

// freePorts returns n distinct loopback ports that were free a moment ago. All are held open together
// so that the kernel cannot hand out the same port twice.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
