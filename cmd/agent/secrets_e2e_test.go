package main

// The secrets test: demo-like runs of every command and of the daemon, with a recognisable value in
// every secret the configuration can hold, and a scan of everything the agent wrote (output, debug
// logs, errors, HTTP answers, metrics, the raw bbolt files) for each secret in the encodings a leak
// takes on the way (URL query, JSON string, base64 of any alignment).

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/byob-agent/byob-agent/config"
	"github.com/byob-agent/byob-agent/internal/testsupport/directoryfake"
	"github.com/byob-agent/byob-agent/internal/testsupport/gcsfake"
	"github.com/byob-agent/byob-agent/internal/testsupport/graphfake"
	"github.com/byob-agent/byob-agent/internal/testsupport/oktafake"
	"github.com/byob-agent/byob-agent/internal/testsupport/testenv"
	"github.com/byob-agent/byob-agent/internal/testsupport/wandbemu"
)

// leakCheck knows the secrets of a test and collects what the agent wrote (artifacts), to report
// every secret found in an artifact by the secret's name, never its value.
type leakCheck struct {
	secrets   []leakSecret
	artifacts []leakArtifact
	checked   int // artifacts already reported on
}

type leakSecret struct {
	name  string
	forms [][2]string // {form name, text}
}

type leakArtifact struct {
	name string
	data []byte
}

// secret registers a secret and returns its value.
func (l *leakCheck) secret(name, value string) string {
	l.secrets = append(l.secrets, leakSecret{name: name, forms: leakForms(value)})
	return value
}

// privateKey registers a PEM private key by a line of its base64 body: the key's distinctive part,
// whatever wraps it (a JSON key file, a URL-encoded storage address).
func (l *leakCheck) privateKey(t *testing.T, name, keyPEM string) {
	t.Helper()
	b, _ := pem.Decode([]byte(keyPEM))
	if b == nil {
		t.Fatalf("%s is not PEM", name)
	}
	// 48 characters inside one 64-character PEM line from the middle of the DER: key material, not
	// the ASN.1 header every key shares.
	body := base64.StdEncoding.EncodeToString(b.Bytes)
	start := len(body)/2/64*64 + 8
	l.secret(name, body[start:start+48])
}

// leakForms are the texts a leaked value may take: as it is, URL-encoded, JSON-escaped, and
// base64-encoded inside a longer encoded text (three alignments, std and URL alphabets; []byte
// fields marshal to JSON as base64, HTTP Basic credentials are base64).
func leakForms(v string) [][2]string {
	forms := [][2]string{{"raw", v}, {"URL-encoded", url.QueryEscape(v)}, {"path-escaped", url.PathEscape(v)}}
	j, _ := json.Marshal(v)
	forms = append(forms, [2]string{"JSON-escaped", string(j[1 : len(j)-1])})
	for off := range 3 {
		chunk := v[off:]
		chunk = chunk[:len(chunk)/3*3]
		forms = append(forms,
			[2]string{fmt.Sprintf("base64 (offset %d)", off), base64.StdEncoding.EncodeToString([]byte(chunk))},
			[2]string{fmt.Sprintf("base64url (offset %d)", off), base64.RawURLEncoding.EncodeToString([]byte(chunk))})
	}
	return forms
}

func (l *leakCheck) add(name string, data []byte) {
	l.artifacts = append(l.artifacts, leakArtifact{name: name, data: bytes.Clone(data)})
}

// addRun collects a command's output.
func (l *leakCheck) addRun(name string, r runResult) {
	l.add(name+": stdout", []byte(r.stdout))
	l.add(name+": stderr", []byte(r.stderr))
}

// addFile collects a file's raw bytes.
func (l *leakCheck) addFile(t *testing.T, name, path string) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	l.add(name, raw)
}

// findings names every secret found in the artifacts collected since the last call.
func (l *leakCheck) findings() []string {
	var out []string
	for _, a := range l.artifacts[l.checked:] {
		for _, s := range l.secrets {
			for _, f := range s.forms {
				if bytes.Contains(a.data, []byte(f[1])) {
					out = append(out, fmt.Sprintf("%s (%s) appears in %s", s.name, f[0], a.name))
					break
				}
			}
		}
	}
	l.checked = len(l.artifacts)
	return out
}

// check fails t with every finding. Deferred, so that what a failed step wrote is scanned too.
func (l *leakCheck) check(t *testing.T) {
	t.Helper()
	for _, f := range l.findings() {
		t.Error("secret leaked: " + f)
	}
}

// TestLeakCheckFindsEncodedSecrets makes sure the scan can fail: each encoding of a secret, inside
// other text, is found and named; unrelated text is not.
func TestLeakCheckFindsEncodedSecrets(t *testing.T) {
	const secret = "SECRET-probe+/&value-0123456789"
	embed := func(s string) []byte { return []byte("level=DEBUG msg=x detail=" + s + " end") }
	quoted, _ := json.Marshal(secret)
	for _, tc := range []struct {
		name string
		data []byte
		want string // the form named in the one finding; "" for none
	}{
		{"raw", embed(secret), "(raw)"},
		{"query", embed("key=" + url.QueryEscape(secret)), "(URL-encoded)"},
		{"json", embed(`{"k":` + string(quoted) + `}`), "(JSON-escaped)"},
		{"basic auth", embed("Basic " + base64.StdEncoding.EncodeToString([]byte("admin:"+secret))), "(base64 (offset "},
		{"json bytes", embed(base64.StdEncoding.EncodeToString([]byte(`{"key":"` + secret + `"}`))), "(base64 (offset "},
		{"jwt", embed(base64.RawURLEncoding.EncodeToString([]byte("ab" + secret))), "(base64"},
		{"clean", embed("SECRET-probe-other"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := &leakCheck{}
			l.secret("probe", secret)
			l.add("artifact", tc.data)
			got := l.findings()
			switch {
			case tc.want == "" && len(got) != 0:
				t.Errorf("false finding: %v", got)
			case tc.want != "" && (len(got) != 1 || !strings.Contains(got[0], tc.want) || !strings.HasPrefix(got[0], "probe ") || strings.Contains(got[0], secret)):
				t.Errorf("findings = %v, want one naming probe %s", got, tc.want)
			}
		})
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	l := &leakCheck{}
	l.privateKey(t, "a key", keyPEM)
	sa, _ := json.Marshal(map[string]string{"private_key": keyPEM})
	l.add("key file", sa)
	l.add("address", []byte("gs://x:"+url.QueryEscape(keyPEM)+"@bucket"))
	if got := l.findings(); len(got) != 2 {
		t.Errorf("a private key in a JSON key file and URL-encoded: findings %v", got)
	}
}

// leakWorld is one set of backends for every scenario: SeaweedFS and local-kms (shared by the test
// binary), Azurite, the GCS fake and a W&B emulator that knows the test's API key.
type leakWorld struct {
	*e2e
	lc       *leakCheck
	az       *testenv.AzureEnv
	gcs      *gcsfake.Server
	wandbURL string
	wandbKey string
	echoAuth atomic.Bool // W&B's URL answers like a broken proxy that echoes the Authorization header
	stage    string      // names the artifacts of the commands run now
	configs  []string    // the valid configurations used, for the coverage check
}

func newLeakWorld(t *testing.T) *leakWorld {
	t.Helper()
	w := &leakWorld{e2e: newE2E(t), lc: &leakCheck{}}
	w.az = azurite.Get(t)
	az := w.az
	w.gcs = gcsfake.Start(t)
	var tokens atomic.Int32
	_, saPEM := serviceAccountKey(t, w.dir, &tokens) // writes sa.json

	w.wandbKey = w.lc.secret("W&B API key", "SECRET-wandb-apikey-7f3a91c2d4e5")
	w.lc.secret("S3 secret access key", backends.SecretKey)
	w.lc.secret("Azure account key", az.Key)
	w.lc.secret("Azure connection string", az.ConnectionString())
	w.lc.privateKey(t, "GCS service-account private key", saPEM)

	checker := wandbemu.NewS3Checker(backends.Endpoint, backends.Region, backends.AccessKey, backends.SecretKey).ForS3Providers()
	var err error
	if checker["AZURE"], err = wandbemu.NewAzureChecker(az.Endpoint, az.Account, az.Key); err != nil {
		t.Fatal(err)
	}
	checker["GCP"] = gcsChecker(w.gcs)
	w.emu = wandbemu.New(wandbemu.Options{APIKey: w.wandbKey, Username: "byob-admin", Checker: checker,
		Fault: func(r *http.Request) wandbemu.Fault {
			if f := w.fault.Load(); f != nil {
				return (*f)(r)
			}
			return wandbemu.Fault{}
		}})
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if w.echoAuth.Load() {
			rw.Header().Set("Retry-After", "3600") // longer than the client waits: no retries
			http.Error(rw, "502 bad gateway: upstream refused the request with Authorization: "+r.Header.Get("Authorization"), http.StatusBadGateway)
			return
		}
		w.emu.ServeHTTP(rw, r)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(w.emu.Close)
	w.wandbURL = srv.URL + "/scim"
	w.writeSecretFile(t, "wandb.key", w.wandbKey+"\n")
	w.writeSecretFile(t, "s3.secret", backends.SecretKey)
	w.writeSecretFile(t, "azure.conn", az.ConnectionString())
	return w
}

func (w *leakWorld) writeSecretFile(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(w.dir, name), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func (w *leakWorld) writeConfig(t *testing.T, cfg string) {
	t.Helper()
	if err := os.WriteFile(w.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

// runAs runs a command, collects its output and checks its exit code.
func (w *leakWorld) runAs(t *testing.T, wantCode int, args ...string) runResult {
	t.Helper()
	r := w.run(args...)
	w.lc.addRun(w.stage+"byob-agent "+strings.Join(args, " "), r)
	if r.code != wantCode {
		t.Errorf("byob-agent %v: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", args, r.code, wantCode, r.stdout, r.stderr)
	}
	return r
}

// replace replaces old with new in s, exactly once.
func replace(t *testing.T, s, old, new string) string {
	t.Helper()
	if strings.Count(s, old) != 1 {
		t.Fatalf("%q is not in the configuration exactly once", old)
	}
	return strings.Replace(s, old, new, 1)
}

// oneShotConfig has a team on every provider, with every kind of storage credential: a W&B key
// file (Basic auth), S3 keys inline and in a file with a session token, an Azure account key and
// connection string, a GCS service account key file.
func (w *leakWorld) oneShotConfig(sessionToken string) string {
	return fmt.Sprintf(`wandb:
  scimURL: %[1]s
  deployment: dedicated
  auth: {mode: basic-user, username: byob-admin, apiKeyFile: wandb.key}
  timeout: 5s
state:
  path: state.db
sync:
  concurrency: 8
defaultProfile: aws
profiles:
  aws:
    provider: aws
    region: %[2]s
    endpoint: %[3]s
    pathStyle: true
    credentials: {accessKeyId: %[4]s, secretAccessKeyFile: s3.secret}
    bucket: "%[5]s-{{ .Team }}"
    kms: {create: true, endpoint: %[6]s, accountId: "%[7]s"}
  minio:
    provider: s3-compatible
    region: %[2]s
    endpoint: %[3]s
    credentials: {accessKeyId: %[4]s, secretAccessKey: "%[8]s", sessionToken: "%[9]s"}
    bucket: "%[5]s-{{ .Team }}"
    path: wandb
  azkey:
    provider: azure
    account: %[10]s
    endpoint: %[11]s
    credentials: {accountKey: "%[12]s"}
    tenantId: 11111111-2222-3333-4444-555555555555
    clientId: aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee
    bucket: "%[5]s-{{ .Team }}"
  azconn:
    provider: azure
    account: %[10]s
    endpoint: %[11]s
    credentials: {connectionStringFile: azure.conn}
    tenantId: 11111111-2222-3333-4444-555555555555
    clientId: aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee
    bucket: "%[5]s-{{ .Team }}"
  gcs:
    provider: gcs
    project: acme-ml
    region: us-central1
    endpoint: %[13]s
    credentials: {serviceAccountKeyFile: sa.json}
    bucket: "%[5]s-{{ .Team }}"
    softDeleteDays: 14
teams:
  - name: %[14]s
  - {name: %[15]s, profile: minio}
  - {name: %[16]s, profile: azkey}
  - {name: %[17]s, profile: azconn}
  - {name: %[18]s, profile: gcs}
`, w.wandbURL, backends.Region, backends.Endpoint, backends.AccessKey, w.prefix, backends.KMSEndpoint, backends.AccountID,
		backends.SecretKey, sessionToken, w.az.Account, w.az.Endpoint, w.az.Key, w.gcs.Endpoint(),
		w.team("aws"), w.team("minio"), w.team("azkey"), w.team("azconn"), w.team("gcs"))
}

// TestSecretsNeverLeak runs every command and the daemon, succeeding and failing, and finds none of
// the configured secrets in anything the agent wrote. Only file-stores' standard output (the one
// place meant to hold credentials) and its --output file are exempt.
func TestSecretsNeverLeak(t *testing.T) {
	w := newLeakWorld(t)
	lc := w.lc
	session := lc.secret("S3 session token", "SECRET-s3-session-token-5c2e8b1d")
	valid := w.oneShotConfig(session)
	w.writeConfig(t, valid)

	t.Run("commands", func(t *testing.T) {
		defer lc.check(t)
		w.runAs(t, 0, "config", "validate")
		w.runAs(t, 0, "plan")
		w.runAs(t, 0, "plan", "--json")
		if out := w.runAs(t, 0, "sync"); !strings.Contains(out.stdout, "5 created") {
			t.Fatalf("sync:\n%s\n%s", out.stdout, out.stderr)
		}
		w.runAs(t, 0, "sync", "--json")
		w.runAs(t, 0, "state", "ls")
		w.runAs(t, 0, "state", "ls", "--json")
		for _, name := range []string{"aws", "minio", "azkey", "azconn", "gcs"} {
			w.runAs(t, 0, "state", "show", w.team(name))
		}
		w.runAs(t, 0, "state", "export")

		// Broken settings on every provider, so that doctor prints its fixes.
		ctx := t.Context()
		if _, err := backends.S3Client(ctx).DeleteBucketCors(ctx, &s3.DeleteBucketCorsInput{Bucket: aws.String(w.prefix + "-" + w.team("aws"))}); err != nil {
			t.Fatal(err)
		}
		off := false
		if _, err := w.az.AdminClient().ServiceClient().SetProperties(ctx, &service.SetPropertiesOptions{DeleteRetentionPolicy: &service.RetentionPolicy{Enabled: &off}}); err != nil {
			t.Fatal(err)
		}
		w.gcs.SetFault(func(r *http.Request) (int, bool) {
			return http.StatusForbidden, strings.Contains(r.URL.Path, "/upload/")
		})
		doc := w.runAs(t, 1, "doctor")
		for _, want := range []string{"cors: expected", "soft-delete: expected", "probe: expected", "fix: "} {
			if !strings.Contains(doc.stdout, want) {
				t.Errorf("doctor does not show %q:\n%s", want, doc.stdout)
			}
		}
		w.runAs(t, 1, "doctor", "--json")
		w.gcs.SetFault(nil)

		// file-stores refuses temporary credentials; without them it prints credentials to standard
		// output by design: only that is exempt.
		if r := w.runAs(t, 1, "file-stores"); !strings.Contains(r.stderr, "temporary") {
			t.Errorf("file-stores with a session token: %s", r.stderr)
		}
		w.writeConfig(t, replace(t, valid, `, sessionToken: "`+session+`"`, ""))
		fs := w.exec("file-stores")
		lc.add("byob-agent file-stores: stderr", []byte(fs.stderr))
		if fs.code != 0 || !strings.Contains(fs.stderr, "holds storage credentials: keep it secret") || !strings.Contains(fs.stdout, backends.SecretKey) {
			t.Errorf("file-stores: exit %d, stderr %q; want the credentials on stdout and a warning on stderr", fs.code, fs.stderr)
		}
		stores := filepath.Join(w.dir, "stores")
		w.runAs(t, 0, "file-stores", "--output", stores)
		if st, err := os.Stat(stores); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("file-stores --output: %v %v; want a file of mode 0600", err, st)
		}
		if raw, _ := os.ReadFile(stores); !bytes.Contains(raw, []byte(url.QueryEscape(w.az.Key))) {
			t.Error("the --output file lacks the Azure storage address")
		}
		w.writeConfig(t, valid)
		lc.addFile(t, "state.db after the commands", filepath.Join(w.dir, "state.db"))
	})

	t.Run("configuration errors", func(t *testing.T) {
		defer lc.check(t)
		notBase64 := lc.secret("Azure account key (not base64)", "SECRET-azure-key-not-base64!")
		saJSON, err := os.ReadFile(filepath.Join(w.dir, "sa.json"))
		if err != nil {
			t.Fatal(err)
		}
		cut := string(saJSON[:bytes.Index(saJSON, []byte("END PRIVATE KEY"))]) // the key's body, then invalid JSON
		for _, tc := range []struct {
			name, old, new, want string
		}{
			{"secret file missing", "secretAccessKeyFile: s3.secret", "secretAccessKeyFile: missing/s3.secret",
				"profiles.aws.credentials.secretAccessKeyFile: cannot read"},
			{"wrong type next to secrets", "{accessKeyId: " + backends.AccessKey + `, secretAccessKey: "`, "{accessKeyId: [" + backends.AccessKey + `], secretAccessKey: "`,
				"profiles.minio.credentials.accessKeyId: expected a string"},
			{"secret of the wrong type", `secretAccessKey: "` + backends.SecretKey + `"`, `secretAccessKey: ["` + backends.SecretKey + `"]`,
				"profiles.minio.credentials.secretAccessKey: expected a string"},
			{"a secret twice", "apiKeyFile: wandb.key", `apiKey: "` + w.wandbKey + `", apiKeyFile: wandb.key`,
				"set either apiKey or apiKeyFile"},
			{"account key not base64", `accountKey: "` + w.az.Key + `"`, `accountKey: "` + notBase64 + `"`,
				"profiles.azkey.credentials.accountKey: is not base64"},
			{"connection string of another account", "connectionStringFile: azure.conn",
				`connectionString: "` + strings.Replace(w.az.ConnectionString(), "AccountName="+w.az.Account, "AccountName=otheraccount", 1) + `"`,
				`names storage account "otheraccount"`},
			{"service account key not JSON", "serviceAccountKeyFile: sa.json", "serviceAccountKey: '" + cut + "'",
				"profiles.gcs.credentials.serviceAccountKey: is not valid JSON"},
			{"secret under a misspelt key", "secretAccessKeyFile: s3.secret", `secretAccessKeyFile: s3.secret, secretAccesKey: "` + backends.SecretKey + `"`,
				"profiles.aws.credentials.secretAccesKey: unknown key"},
			{"YAML error on a secret's line", `sessionToken: "` + session + `"}`, `sessionToken: "` + session + `}`,
				"invalid YAML"},
		} {
			w.stage = "config error (" + tc.name + "): "
			w.writeConfig(t, replace(t, valid, tc.old, tc.new))
			if r := w.runAs(t, 2, "config", "validate"); !strings.Contains(r.stderr, tc.want) {
				t.Errorf("%s: stderr lacks %q:\n%s", tc.name, tc.want, r.stderr)
			}
		}
		w.writeConfig(t, valid)
	})

	t.Run("failing syncs", func(t *testing.T) {
		defer lc.check(t)
		wrongS3 := lc.secret("S3 secret access key (wrong)", "SECRET-s3-wrong-secret-key-9d4f21a7")
		wrongAzureKey := lc.secret("Azure account key (wrong)", base64.StdEncoding.EncodeToString([]byte(lc.secret("Azure account key (wrong, decoded)", "SECRET-azure-wrong-account-key-3e7a"))))
		// A service account key whose private key is not one.
		corrupt := lc.secret("GCS private key (corrupt)", base64.StdEncoding.EncodeToString([]byte(lc.secret("GCS private key (corrupt, decoded)", "SECRET-gcs-corrupt-private-key-material-0d9e"))))
		badSA, _ := json.Marshal(map[string]string{"type": "service_account", "client_email": "byob-agent@acme-ml.iam.gserviceaccount.com",
			"private_key": "-----BEGIN PRIVATE KEY-----\n" + corrupt + "\n-----END PRIVATE KEY-----\n", "token_uri": "http://127.0.0.1:1/token"})
		w.writeSecretFile(t, "sa-corrupt.json", string(badSA))
		// Wrong storage credentials, a drift check on every run, and a new team on each wrong profile.
		w.stage = "wrong storage credentials: "
		cfg := replace(t, valid, "secretAccessKeyFile: s3.secret", `secretAccessKey: "`+wrongS3+`"`)
		cfg = replace(t, cfg, `accountKey: "`+w.az.Key+`"`, `accountKey: "`+wrongAzureKey+`"`)
		cfg = replace(t, cfg, "serviceAccountKeyFile: sa.json", "serviceAccountKeyFile: sa-corrupt.json")
		cfg = replace(t, cfg, "  concurrency: 8\n", "  concurrency: 8\n  driftCheckInterval: 1ms\n")
		cfg += fmt.Sprintf("  - name: %s\n  - {name: %s, profile: azkey}\n", w.team("awsnew"), w.team("aznew"))
		w.writeConfig(t, cfg)
		w.runAs(t, 0, "plan")
		if out := w.runAs(t, 1, "sync"); strings.Count(out.stdout, "access to it is denied") != 2 || strings.Count(out.stdout, "RESPONSE 403") != 2 ||
			!strings.Contains(out.stdout, "failed to parse private key") {
			t.Errorf("sync with wrong storage keys should fail on S3's and Azure's refusals and the corrupt GCS key:\n%s", out.stdout)
		}
		w.runAs(t, 1, "sync", "--json")
		w.runAs(t, 1, "doctor")
		w.runAs(t, 0, "state", "ls")
		w.runAs(t, 0, "state", "show", w.team("awsnew"))
		w.runAs(t, 0, "state", "show", w.team("aznew"))

		// W&B refuses the key.
		w.stage = "wrong W&B key: "
		wrongWandb := lc.secret("W&B API key (wrong)", "SECRET-wandb-wrong-apikey-0b1e66f2")
		w.writeConfig(t, replace(t, valid, "mode: basic-user, username: byob-admin, apiKeyFile: wandb.key", `mode: bearer, apiKey: "`+wrongWandb+`"`))
		w.runAs(t, 1, "plan")
		if out := w.runAs(t, 1, "sync"); !strings.Contains(out.stderr, "401") {
			t.Errorf("sync with a wrong W&B key should fail with W&B's 401:\n%s", out.stderr)
		}

		// W&B fails, then a proxy in front of it echoes the credential in its error page.
		w.writeConfig(t, valid)
		fail := func(*http.Request) wandbemu.Fault {
			return wandbemu.Fault{Status: http.StatusInternalServerError, RetryAfter: "3600"}
		}
		w.fault.Store(&fail)
		w.stage = "W&B answering 500: "
		if out := w.runAs(t, 1, "sync"); !strings.Contains(out.stderr, "500") {
			t.Errorf("sync while W&B fails should report its 500:\n%s", out.stderr)
		}
		w.fault.Store(nil)
		w.echoAuth.Store(true)
		w.stage = "a proxy echoing the credential: "
		if out := w.runAs(t, 1, "sync", "--json"); !strings.Contains(out.stderr, "upstream refused the request with Authorization: Basic [REDACTED]") {
			t.Errorf("the proxy's page should be shown with the credential redacted:\n%s", out.stderr)
		}
		w.echoAuth.Store(false)
		w.stage = ""
		lc.addFile(t, "state.db after the failures", filepath.Join(w.dir, "state.db"))
		if raw := lc.artifacts[len(lc.artifacts)-1].data; !bytes.Contains(raw, []byte("access to it is denied")) {
			t.Error("state.db does not hold the last errors in plain text: scanning its bytes proves nothing")
		}
	})

	// The state in PostgreSQL: the DSN (from a file, with a password that trust authentication
	// ignores) never shows, in the commands' output or in their errors.
	t.Run("state in PostgreSQL", func(t *testing.T) {
		defer lc.check(t)
		dsn := testenv.PostgresDatabase(t)
		password := lc.secret("PostgreSQL DSN password", "SECRET-pg-password-3f9a1c")
		w.writeSecretFile(t, "pg.dsn", strings.Replace(dsn, "postgres@", "postgres:"+password+"@", 1)+"\n")
		pg := replace(t, valid, "state:\n  path: state.db\n", "state:\n  path: state.db\n  postgres: {dsnFile: pg.dsn}\n")
		w.writeConfig(t, pg)
		defer w.writeConfig(t, valid)
		w.stage = "state in PostgreSQL: "
		defer func() { w.stage = "" }()
		w.runAs(t, 0, "config", "validate")
		if out := w.runAs(t, 0, "state", "migrate", "--to", "postgres"); !strings.Contains(out.stdout, "verified record by record") {
			t.Errorf("state migrate into PostgreSQL:\n%s", out.stdout)
		}
		w.runAs(t, 0, "state", "ls")
		w.runAs(t, 0, "state", "export")
		w.runAs(t, 1, "state", "show", "no-such-team")
		w.runAs(t, 2, "state", "backup", "copy.db")
		w.runAs(t, 1, "state", "migrate", "--to", "postgres") // not empty any more: refused
		w.configs = append(w.configs, pg)
	})

	// The coverage check needs the daemon's configurations: it runs when the daemon scenario did.
	if t.Run("daemon", func(t *testing.T) { w.daemonScenario(t) }) {
		w.configs = append(w.configs, valid)
		t.Run("every secret field was set", func(t *testing.T) { w.checkCoverage(t) })
	}
}

// idpFakes are the identity providers of the daemon scenario, each with a group named wandb-*.
type idpFakes struct {
	okta        *oktafake.Server
	oktaCA      string
	graph       *graphfake.Fake
	graphURL    string
	entraSecret string
	google      *directoryfake.Server
	entraGUID   string // the Entra group's id
	oktaGroup   string

	mu          sync.Mutex
	graphTokens map[string]bool // the access tokens the agent presented to Graph
}

const (
	entraTenant = "0b8a4f55-1c3e-4f0e-9d36-2f6a8e7c1d40"
	entraClient = "6c1f0f9e-7b2d-4c55-8a0e-3d9b2e4f5a61"
)

func (w *leakWorld) startIdPs(t *testing.T) *idpFakes {
	t.Helper()
	lc := w.lc
	f := &idpFakes{entraGUID: "9f1c2d3e-4b5a-4c6d-8e7f-" + fmt.Sprintf("%012d", time.Now().UnixNano()%1e12), oktaGroup: "00g" + w.sfx}

	f.okta = oktafake.New()
	t.Cleanup(f.okta.Close)
	oktaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	f.okta.AddClient("0oabyobagent", &oktaKey.PublicKey, "kid-1", "okta.groups.read", "okta.users.read")
	f.okta.AddGroup(oktafake.Group{ID: f.oktaGroup, Name: "wandb-okta-" + w.sfx})
	f.okta.AddUser(oktafake.User{ID: "00uada", Login: "ada@example.com", Email: "ada@example.com"})
	f.okta.AddMember(f.oktaGroup, "00uada")
	der, _ := x509.MarshalPKCS8PrivateKey(oktaKey)
	oktaPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	lc.privateKey(t, "Okta private key", oktaPEM)
	w.writeSecretFile(t, "okta.pem", oktaPEM)
	f.oktaCA = filepath.Join(w.dir, "okta-ca.pem")
	w.writeSecretFile(t, "okta-ca.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.okta.Certificate().Raw})))

	f.entraSecret = lc.secret("Entra client secret", "SECRET-entra-client-secret-41c7e2")
	f.graph = graphfake.New(graphfake.Config{TenantID: entraTenant, ClientID: entraClient, ClientSecret: f.entraSecret})
	f.graph.AddUser("5d0b3c1a-2e4f-4a6b-9c8d-7e6f5a4b3c2d", "ada@example.com", "ada@example.com")
	f.graph.AddGroup(f.entraGUID, "wandb-entra-"+w.sfx, "", "5d0b3c1a-2e4f-4a6b-9c8d-7e6f5a4b3c2d")
	f.graphTokens = map[string]bool{}
	gs := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			f.mu.Lock()
			f.graphTokens[tok] = true
			f.mu.Unlock()
		}
		f.graph.ServeHTTP(rw, r)
	}))
	t.Cleanup(gs.Close)
	f.graphURL = gs.URL

	f.google = directoryfake.New(directoryfake.Options{})
	t.Cleanup(f.google.Close)
	f.google.AddGroup(directoryfake.Group{ID: "03gw" + w.sfx, Email: "wandb-gw-" + w.sfx + "@example.com", Name: "wandb-gw-" + w.sfx})
	f.google.AddMembers("03gw"+w.sfx, directoryfake.Member{Email: "ada@example.com"})
	var sa struct {
		PrivateKey string `json:"private_key"`
	}
	if err := json.Unmarshal(f.google.CredentialsJSON(), &sa); err != nil {
		t.Fatal(err)
	}
	lc.privateKey(t, "Google service-account private key", sa.PrivateKey)
	w.writeSecretFile(t, "google.json", string(f.google.CredentialsJSON()))
	return f
}

// daemonConfig is the daemon's configuration: SCIM with two tokens, the three webhooks (the generic
// one with an unprefixed base64 and a whsec_ secret), Okta (OAuth private key), Entra (client secret, a subscription)
// and Google (service account key) sources, member sync, one YAML team.
func (w *leakWorld) daemonConfig(port int, f *idpFakes, s map[string]string) string {
	return fmt.Sprintf(`wandb:
  scimURL: %[1]s
  deployment: dedicated
  auth: {mode: bearer, apiKeyFile: wandb.key}
  timeout: 5s
state:
  path: daemon.db
server:
  listen: 127.0.0.1:%[2]d
  baseURL: http://127.0.0.1:%[2]d
  shutdownTimeout: 3s
  adminToken: "%[20]s"
  viewerTokens: ["%[21]s"]
schedule: "@every 1h"
workers: 2
defaultProfile: onprem
profiles:
  onprem:
    provider: s3-compatible
    region: %[3]s
    endpoint: %[4]s
    credentials: {accessKeyId: %[5]s, secretAccessKey: "${TEST_S3_SECRET}"}
    bucket: "%[6]s-{{ .Team }}"
scim:
  tokens: ["%[7]s"]
  tokenFiles: [scim.token]
  groups: {prefix: "wandb-"}
webhooks:
  okta: {secrets: ["%[8]s"]}
  graph: {clientStates: ["%[9]s"]}
  generic: {secrets: ["%[10]s", "%[11]s"]}
sources:
  okta:
    orgURL: %[12]s
    clientId: 0oabyobagent
    privateKeyFile: okta.pem
    keyId: kid-1
    search: 'profile.name sw "wandb-"'
    groups: {prefix: "wandb-"}
  entra:
    tenantId: %[13]s
    clientId: %[14]s
    clientSecret: "%[15]s"
    authorityURL: %[16]s
    graphURL: %[16]s
    filter: "startswith(displayName,'wandb-')"
    subscription: {notificationURL: "https://127.0.0.1:%[2]d/webhooks/graph", clientState: "%[9]s"}
    groups: {prefix: "wandb-"}
  google:
    serviceAccountKeyFile: google.json
    subject: %[17]s
    baseURL: %[18]s
    query: "email:wandb-*"
    groups: {prefix: "wandb-"}
members: {sync: true, createUsers: true}
teams:
  - name: %[19]s
`, w.wandbURL, port, backends.Region, backends.Endpoint, backends.AccessKey, w.prefix,
		s["scim"], s["okta hook"], s["client state"], s["generic base64"], s["generic whsec"],
		f.okta.URL, entraTenant, entraClient, f.entraSecret, f.graphURL, f.google.Admin, f.google.URL, w.team("yaml"), s["admin"], s["viewer"])
}

// send makes one request to the daemon and collects the answer.
func (w *leakWorld) send(t *testing.T, d *daemonProc, method, path string, header map[string]string, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, d.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := d.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	w.lc.add(fmt.Sprintf("answer to %s %s (HTTP %d)", method, path, resp.StatusCode), b)
	return resp.StatusCode, string(b)
}

// signGeneric signs a Standard Webhooks call with key.
func signGeneric(id, ts string, body, key []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// reload writes cfg, sends SIGHUP and waits until the daemon logged `done` once more.
func (w *leakWorld) reload(t *testing.T, d *daemonProc, cfg, done string) {
	t.Helper()
	n := strings.Count(d.logs(), done)
	w.writeConfig(t, cfg)
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the daemon to log "+done, func() bool { return strings.Count(d.logs(), done) > n })
}

func (w *leakWorld) daemonScenario(t *testing.T) {
	lc := w.lc
	defer lc.check(t)
	f := w.startIdPs(t)
	genericKey := lc.secret("generic webhook key (decoded whsec_)", "SECRET-generic-whsec-key-8a2c0f")
	genericKey2 := lc.secret("generic webhook key (decoded unprefixed base64)", "SECRET-generic-webhook-raw-77b0e4")
	s := map[string]string{
		"scim":           lc.secret("SCIM token", "SECRET-scim-token-1f9b3c7d5e"),
		"okta hook":      lc.secret("Okta event hook secret", "SECRET-okta-hook-secret-6e2a94"),
		"client state":   lc.secret("Graph clientState", "SECRET-graph-client-state-c31d8"),
		"generic base64": lc.secret("generic webhook secret (base64, no whsec_)", base64.StdEncoding.EncodeToString([]byte(genericKey2))),
		"generic whsec":  lc.secret("generic webhook secret (whsec_)", "whsec_"+base64.StdEncoding.EncodeToString([]byte(genericKey))),
		"admin":          lc.secret("admin token", "SECRET-admin-token-4d8e2b7a9c1f"),
		"viewer":         lc.secret("status page viewer token", "SECRET-viewer-token-5f1e9a3c"),
	}
	scimFileToken := lc.secret("SCIM token (file)", "SECRET-scim-token-from-file-2a6d0")
	w.writeSecretFile(t, "scim.token", scimFileToken+"\n")
	port := freePort(t)
	cfg := w.daemonConfig(port, f, s)
	w.writeConfig(t, cfg)
	d := w.startDaemonEnv(port, "SSL_CERT_FILE="+f.oktaCA)
	teams := []string{w.team("yaml"), "okta-" + w.sfx, "entra-" + w.sfx, "gw-" + w.sfx}
	waitFor(t, "the teams of the file and of the three IdPs", func() bool {
		return !slices.ContainsFunc(teams, func(n string) bool { return !w.hasTeam(n) })
	})

	// SCIM: users pushed with passwords, a group, and a request with a wrong token.
	scimJSON := map[string]string{"Content-Type": "application/scim+json"}
	auth := func(token string) map[string]string {
		return map[string]string{"Content-Type": "application/scim+json", "Authorization": "Bearer " + token}
	}
	userIDs := map[string]string{}
	for i, u := range []struct{ name, attr string }{{"ada@example.com", "password"}, {"bob@example.com", "Password"},
		{"cy@example.com", "urn:ietf:params:scim:schemas:core:2.0:User:password"}} {
		pw := lc.secret(fmt.Sprintf("SCIM user password %d", i+1), fmt.Sprintf("SECRET-user-password-%d-e5a1c9", i+1))
		token := s["scim"]
		if i > 0 {
			token = scimFileToken
		}
		code, body := w.send(t, d, http.MethodPost, "/scim/v2/Users", auth(token),
			fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":%q,"active":true,%q:%q}`, u.name, u.attr, pw))
		if code != http.StatusCreated {
			t.Fatalf("create user %s: %d %s", u.name, code, body)
		}
		userIDs[u.name] = jsonField(body, `"id":"`)
	}
	patchPW := lc.secret("SCIM user password (PATCH)", "SECRET-user-password-patched-0c4f")
	for _, op := range []string{
		`{"op":"replace","path":"password","value":"` + patchPW + `"}`,
		`{"op":"Replace","value":{"password":"` + patchPW + `","displayName":"Ada"}}`,
		`{"op":"add","path":"urn:ietf:params:scim:schemas:core:2.0:User:password","value":"` + patchPW + `"}`,
		`{"op":"replace","value":{"urn:ietf:params:scim:schemas:core:2.0:User:password":"` + patchPW + `"}}`,
	} {
		if code, body := w.send(t, d, http.MethodPatch, "/scim/v2/Users/"+userIDs["ada@example.com"], auth(s["scim"]),
			`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[`+op+`]}`); code != http.StatusOK && code != http.StatusNoContent {
			t.Errorf("patch a password: %d %s", code, body)
		}
	}
	group := "wandb-scim-" + w.sfx
	if code, body := w.send(t, d, http.MethodPost, "/scim/v2/Groups", auth(s["scim"]),
		`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"`+group+`","members":[{"value":"`+userIDs["ada@example.com"]+`"}]}`); code != http.StatusCreated {
		t.Fatalf("create group: %d %s", code, body)
	}
	w.send(t, d, http.MethodGet, "/scim/v2/Users", auth(s["scim"]), "")
	forgedSCIM := lc.secret("forged SCIM token", "SECRET-forged-scim-token-93be1d0a")
	if code, _ := w.send(t, d, http.MethodGet, "/scim/v2/Users", auth(forgedSCIM), ""); code != http.StatusUnauthorized {
		t.Errorf("a wrong SCIM token: %d", code)
	}
	w.send(t, d, http.MethodGet, "/scim/v2/Users", scimJSON, "")

	// The admin endpoint: a backup with the token, and a forged token.
	if code, _ := w.send(t, d, http.MethodGet, "/admin/state/backup", map[string]string{"Authorization": "Bearer " + s["admin"]}, ""); code != http.StatusOK {
		t.Errorf("admin backup: %d", code)
	}
	forgedAdmin := lc.secret("forged admin token", "SECRET-forged-admin-token-77e1a3")
	if code, _ := w.send(t, d, http.MethodGet, "/admin/state/export", map[string]string{"Authorization": "Bearer " + forgedAdmin}, ""); code != http.StatusUnauthorized {
		t.Errorf("admin export with a forged token: %d", code)
	}

	// The status page, every team's page, and a login with a forged token.
	viewer := map[string]string{"Authorization": "Bearer " + s["viewer"]}
	if code, body := w.send(t, d, http.MethodGet, "/status/", viewer, ""); code != http.StatusOK || !strings.Contains(body, w.team("yaml")) {
		t.Errorf("status page: %d", code)
	}
	for _, name := range append(teams, "scim-"+w.sfx) {
		w.send(t, d, http.MethodGet, "/status/teams/"+name, viewer, "")
	}
	form := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	if code, _ := w.send(t, d, http.MethodPost, "/status/login", form, "token="+s["viewer"]); code != http.StatusOK { // the redirect is followed
		t.Errorf("status page login: %d", code)
	}
	forgedViewer := lc.secret("forged viewer token", "SECRET-forged-viewer-token-2c8d")
	if code, _ := w.send(t, d, http.MethodPost, "/status/login", form, "token="+forgedViewer); code != http.StatusUnauthorized {
		t.Errorf("status page login with a forged token: %d", code)
	}

	// Okta: the verification, an event, a forged event.
	jsonCT := func(h map[string]string) map[string]string { h["Content-Type"] = "application/json"; return h }
	if code, _ := w.send(t, d, http.MethodGet, "/webhooks/okta", map[string]string{"Authorization": s["okta hook"], "x-okta-verification-challenge": "challenge-1"}, ""); code != http.StatusOK {
		t.Errorf("okta verification: %d", code)
	}
	event := fmt.Sprintf(`{"eventType":"com.okta.event_hook","eventId":"e1","data":{"events":[{"uuid":"u1","eventType":"group.user_membership.add","target":[{"id":"00uada","type":"User"},{"id":%q,"type":"UserGroup"}]}]}}`, f.oktaGroup)
	if code, _ := w.send(t, d, http.MethodPost, "/webhooks/okta", jsonCT(map[string]string{"Authorization": s["okta hook"]}), event); code != http.StatusNoContent {
		t.Errorf("okta event: %d", code)
	}
	forgedOkta := lc.secret("forged Okta hook secret", "SECRET-forged-okta-hook-5b7c2e")
	if code, _ := w.send(t, d, http.MethodPost, "/webhooks/okta", jsonCT(map[string]string{"Authorization": forgedOkta}), event); code != http.StatusUnauthorized {
		t.Errorf("forged okta event: %d", code)
	}

	// Graph: the handshake, a notification, a forged one.
	if code, _ := w.send(t, d, http.MethodPost, "/webhooks/graph?validationToken=handshake-1", map[string]string{"Content-Type": "text/plain"}, ""); code != http.StatusOK {
		t.Errorf("graph handshake: %d", code)
	}
	notification := func(state string) string {
		return fmt.Sprintf(`{"value":[{"subscriptionId":"s1","clientState":%q,"changeType":"updated","resource":"Groups/%s","resourceData":{"id":%q}}]}`, state, f.entraGUID, f.entraGUID)
	}
	if code, _ := w.send(t, d, http.MethodPost, "/webhooks/graph", jsonCT(map[string]string{}), notification(s["client state"])); code != http.StatusAccepted {
		t.Errorf("graph notification: %d", code)
	}
	forgedState := lc.secret("forged clientState", "SECRET-forged-client-state-4d1a")
	if code, _ := w.send(t, d, http.MethodPost, "/webhooks/graph", jsonCT(map[string]string{}), notification(forgedState)); code != http.StatusUnauthorized {
		t.Errorf("forged graph notification: %d", code)
	}

	// Generic: signed with either secret, a replay, and a forged signature.
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	body := `{"teams":["` + w.team("yaml") + `"]}`
	forgedKey := lc.secret("forged generic key", "SECRET-forged-generic-key-f00d1e")
	for _, c := range []struct {
		id   string
		key  string
		want int
	}{{"m1", genericKey2, http.StatusNoContent}, {"m2", genericKey, http.StatusNoContent}, {"m1", genericKey2, http.StatusNoContent}, {"m3", forgedKey, http.StatusUnauthorized}} {
		h := jsonCT(map[string]string{"webhook-id": c.id, "webhook-timestamp": ts, "webhook-signature": signGeneric(c.id, ts, []byte(body), []byte(c.key))})
		if code, _ := w.send(t, d, http.MethodPost, "/webhooks/generic", h, body); code != c.want {
			t.Errorf("generic webhook %s: %d, want %d", c.id, code, c.want)
		}
	}
	waitFor(t, "every webhook's reconcile and the SCIM group's team", func() bool {
		_, m := w.send(t, d, http.MethodGet, "/metrics", nil, "")
		for _, src := range []string{"okta", "graph", "generic", "scim"} {
			if !strings.Contains(m, `byob_webhook_to_reconciled_seconds_count{source="`+src+`"}`) {
				return false
			}
		}
		return w.hasTeam("scim-" + w.sfx)
	})

	// A reload with invalid secrets is refused; one with wrong S3 credentials fails a new team;
	// one with a wrong W&B key, then one with wrong IdP credentials, fail the reconcile.
	hookCtl := lc.secret("Okta hook secret (control character)", "SECRET-okta-hook-ctl-9e0f")
	bad := replace(t, cfg, `okta: {secrets: ["`+s["okta hook"]+`"]}`, `okta: {secrets: ["`+hookCtl+`\u0007"]}`)
	bad = replace(t, bad, `"`+s["generic whsec"]+`"`, `"whsec_`+s["generic base64"]+`!"`)
	w.reload(t, d, bad, "configuration reload failed")

	wrongS3 := lc.secret("S3 secret access key (daemon, wrong)", "SECRET-s3-daemon-wrong-secret-2f8e")
	cfgS3 := replace(t, cfg, `secretAccessKey: "${TEST_S3_SECRET}"`, `secretAccessKey: "`+wrongS3+`"`) + "  - name: " + w.team("late") + "\n"
	w.reload(t, d, cfgS3, `"msg":"reconciled","key":"all"`)
	if !strings.Contains(d.logs(), "access to it is denied") {
		t.Error("the new team's bucket should have failed on S3's refusal of the wrong secret")
	}

	wrongWandb := lc.secret("W&B API key (daemon, wrong)", "SECRET-wandb-daemon-wrong-key-6a3b")
	w.reload(t, d, replace(t, cfg, "apiKeyFile: wandb.key", `apiKey: "`+wrongWandb+`"`), `"msg":"reconciled","key":"all"`)
	// /readyz says only that reconciles fail; the reason is for the admin token's bearer.
	adminAuth := map[string]string{"Authorization": "Bearer " + s["admin"]}
	if code, body := w.send(t, d, http.MethodGet, "/readyz", nil, ""); code != http.StatusServiceUnavailable || strings.TrimSpace(body) != reasonFailing {
		t.Errorf("readyz after W&B refused the key: %d %s", code, body)
	}
	if code, body := w.send(t, d, http.MethodGet, "/admin/status", adminAuth, ""); code != http.StatusOK || !strings.Contains(body, "401") || !strings.Contains(body, `"ready":false`) {
		t.Errorf("admin status after W&B refused the key: %d %s", code, body)
	}

	wrongOkta := lc.secret("Okta API token (wrong)", "SECRET-okta-api-token-wrong-d2c5a8")
	cfgIdP := replace(t, cfg, "clientId: 0oabyobagent\n    privateKeyFile: okta.pem\n    keyId: kid-1\n", `apiToken: "`+wrongOkta+`"`+"\n")
	cfgIdP = replace(t, cfgIdP, f.entraSecret, lc.secret("Entra client secret (wrong)", "SECRET-entra-wrong-secret-77f1c0"))
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	forgedSA := directoryfake.KeyFile(f.google.ClientEmail, "kid-forged", f.google.TokenURI, otherKey)
	der, _ := x509.MarshalPKCS8PrivateKey(otherKey)
	lc.privateKey(t, "Google service-account private key (unknown to Google)", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})))
	w.writeSecretFile(t, "google-forged.json", string(forgedSA))
	cfgIdP = replace(t, cfgIdP, "serviceAccountKeyFile: google.json", "serviceAccountKeyFile: google-forged.json")
	w.reload(t, d, cfgIdP, `"msg":"reconciled","key":"all"`)
	w.configs = append(w.configs, cfg, cfgIdP)
	if code, body := w.send(t, d, http.MethodGet, "/readyz", nil, ""); code != http.StatusServiceUnavailable || strings.Contains(body, "okta") {
		t.Errorf("readyz after the IdPs refused the credentials: %d %s", code, body)
	}
	if code, body := w.send(t, d, http.MethodGet, "/admin/status", adminAuth, ""); code != http.StatusOK || !strings.Contains(body, "okta") {
		t.Errorf("admin status after the IdPs refused the credentials: %d %s", code, body)
	}
	w.send(t, d, http.MethodGet, "/metrics", nil, "")

	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Wait(); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
	lc.add("the daemon's debug log", []byte(d.logs()))
	// Access tokens the IdPs issued are credentials too.
	for i, tok := range f.google.IssuedTokens() {
		lc.secret(fmt.Sprintf("Google access token %d", i+1), tok)
	}
	f.mu.Lock()
	for tok := range f.graphTokens {
		lc.secret("an Entra access token", tok)
	}
	f.mu.Unlock()
	for _, want := range []string{"invalid_client", "Invalid token", "SCIM group created"} {
		if !strings.Contains(d.logs(), want) {
			t.Errorf("the daemon's log lacks %q: a scenario did not run", want)
		}
	}
	w.stage = "after the daemon: "
	w.runAs(t, 0, "state", "export")
	w.runAs(t, 0, "state", "ls", "--json")
	w.stage = ""
	lc.addFile(t, "daemon.db", filepath.Join(w.dir, "daemon.db"))
	if raw := lc.artifacts[len(lc.artifacts)-1].data; !bytes.Contains(raw, []byte(`"userName":"bob@example.com"`)) {
		t.Error("daemon.db does not hold the pushed users in plain text: scanning its bytes proves nothing")
	}
}

// checkCoverage fails for a config.Secret field that none of the test's configurations set, so that
// a secret added to the configuration later is added to this test too.
func (w *leakWorld) checkCoverage(t *testing.T) {
	all, set := map[string]bool{}, map[string]bool{}
	secretFields(reflect.TypeFor[config.Config](), "", map[reflect.Type]bool{}, all)
	lookup := func(name string) (string, bool) {
		if name == "TEST_S3_SECRET" {
			return backends.SecretKey, true
		}
		return "", false
	}
	for i, text := range w.configs {
		path := filepath.Join(w.dir, fmt.Sprintf("coverage-%d.yaml", i))
		w.writeSecretFile(t, filepath.Base(path), text)
		cfg, err := config.Load(path, config.LoadOptions{LookupEnv: lookup, ReadFile: os.ReadFile})
		if err != nil {
			t.Fatalf("configuration %d: %v", i, err)
		}
		setSecrets(reflect.ValueOf(cfg).Elem(), "", set)
	}
	if len(all) < 10 {
		t.Fatalf("found only %d secret fields: the walk is broken", len(all))
	}
	for _, f := range slices.Sorted(maps.Keys(all)) {
		if !set[f] {
			t.Errorf("no configuration of this test sets the secret %s: give it a recognisable value", f)
		}
	}
}

var secretType = reflect.TypeFor[config.Secret]()

// secretFields adds the path of every config.Secret within values of type t ("[]" for the elements
// of slices and maps; pointers are transparent). It descends into the config package's types only.
func secretFields(t reflect.Type, path string, seen map[reflect.Type]bool, out map[string]bool) {
	switch {
	case t == secretType:
		out[path] = true
	case t.Kind() == reflect.Pointer, t.Kind() == reflect.Slice, t.Kind() == reflect.Map:
		elem := path
		if t.Kind() != reflect.Pointer {
			elem += "[]"
		}
		secretFields(t.Elem(), elem, seen, out)
	case t.Kind() == reflect.Struct && t.PkgPath() == secretType.PkgPath() && !seen[t]:
		seen[t] = true
		for i := range t.NumField() {
			f := t.Field(i)
			secretFields(f.Type, strings.TrimPrefix(path+"."+f.Name, "."), seen, out)
		}
		delete(seen, t)
	}
}

// setSecrets adds the paths, as secretFields names them, of the secrets set in v.
func setSecrets(v reflect.Value, path string, out map[string]bool) {
	switch {
	case v.Type() == secretType:
		if !v.Field(0).IsNil() {
			out[path] = true
		}
	case v.Kind() == reflect.Pointer:
		if !v.IsNil() {
			setSecrets(v.Elem(), path, out)
		}
	case v.Kind() == reflect.Slice:
		for i := range v.Len() {
			setSecrets(v.Index(i), path+"[]", out)
		}
	case v.Kind() == reflect.Map:
		for it := v.MapRange(); it.Next(); {
			setSecrets(it.Value(), path+"[]", out)
		}
	case v.Kind() == reflect.Struct && v.Type().PkgPath() == secretType.PkgPath():
		for i := range v.NumField() {
			setSecrets(v.Field(i), strings.TrimPrefix(path+"."+v.Type().Field(i).Name, "."), out)
		}
	}
}
