package testenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
)

// Azurite's built-in development account. The key is public (Microsoft documents it), so printing it is fine.
const (
	AzuriteAccount = "devstoreaccount1"
	AzuriteKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// azuriteStartAttempts bounds retries of Azurite: its port is picked free but bound a moment later, so
// another process can take it in between.
const azuriteStartAttempts = 3

// AzuriteOptions configures StartAzurite. The zero value is ready to use.
type AzuriteOptions struct {
	// Dir, when set, keeps Azurite's data in Dir/azurite across restarts. Empty: data lives in memory only.
	// (Azurite refuses --inMemoryPersistence together with --location, so it is one or the other.)
	Dir  string
	Logs io.Writer // receives Azurite's output; nil: discarded (the tail still appears in start errors)
}

// AzureEnv is a running Azurite Blob service behind a counting, fault-injecting proxy. Endpoint is the
// proxy's blob service URL including the account path segment, as a client's service URL.
type AzureEnv struct {
	Endpoint string // http://127.0.0.1:<proxy port>/devstoreaccount1
	Account  string // AzuriteAccount
	Key      string // AzuriteKey

	direct  string // Azurite itself, bypassing the proxy: http://127.0.0.1:<port>
	azurite *child
	proxy   *countingProxy
}

// AzuriteBinary returns the azurite-blob launcher installed by `make tools` (npm ci in tools/azurite).
func AzuriteBinary() (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return azuriteBinaryIn(root)
}

func azuriteBinaryIn(root string) (string, error) {
	p := filepath.Join(root, "tools", "azurite", "node_modules", ".bin", "azurite-blob")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s not found: run `make tools`", p)
	}
	return p, nil
}

// StartAzurite starts azurite-blob and its proxy and returns when the Blob service answers. ctx bounds
// the start-up only; Azurite runs until Close.
func StartAzurite(ctx context.Context, o AzuriteOptions) (_ *AzureEnv, err error) {
	bin, err := AzuriteBinary()
	if err != nil {
		return nil, err
	}
	logs := io.Discard
	if o.Logs != nil {
		logs = &lockedWriter{w: o.Logs}
	}
	var storage []string
	if o.Dir == "" {
		storage = []string{"--inMemoryPersistence"}
	} else {
		dataDir := filepath.Join(o.Dir, "azurite")
		if err := os.MkdirAll(dataDir, 0o755); err != nil {
			return nil, fmt.Errorf("create Azurite data directory: %w", err)
		}
		storage = []string{"--location", dataDir}
	}
	e := &AzureEnv{Account: AzuriteAccount, Key: AzuriteKey}
	defer func() {
		if err != nil {
			err = errors.Join(err, e.Close())
		}
	}()
	var errs []error
	for range azuriteStartAttempts {
		err := e.startOnce(ctx, bin, storage, logs)
		if err == nil {
			break
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	if e.azurite == nil {
		return nil, fmt.Errorf("start Azurite: %w", errors.Join(errs...))
	}
	if e.proxy, err = startProxy(e.direct, azureOperation, logs); err != nil {
		return nil, err
	}
	e.Endpoint = e.proxy.url + "/" + AzuriteAccount
	return e, nil
}

func (e *AzureEnv) startOnce(ctx context.Context, bin string, storage []string, logs io.Writer) error {
	ports, err := freePorts(1)
	if err != nil {
		return err
	}
	args := append([]string{
		"--blobHost", "127.0.0.1", "--blobPort", strconv.Itoa(ports[0]),
		// The Go SDK speaks a newer API version than Azurite knows; every call fails without this.
		"--skipApiVersionCheck",
		// Azurite otherwise sends usage data to Microsoft: tests talk to 127.0.0.1 only.
		"--disableTelemetry",
		"--silent",
	}, storage...)
	c, err := startChild("azurite", bin, args, nil, logs)
	if err != nil {
		return err
	}
	direct := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	if err := waitForAzurite(ctx, c, newAzureClient(direct+"/"+AzuriteAccount, -1)); err != nil {
		c.stop()
		return err
	}
	e.azurite, e.direct = c, direct
	return nil
}

// waitForAzurite polls until the Blob service returns its properties (Node starts in about a second).
func waitForAzurite(ctx context.Context, c *child, client *azblob.Client) error {
	return c.waitReady(ctx, "Azurite", 100*time.Millisecond, func(ctx context.Context) error {
		_, err := client.ServiceClient().GetProperties(ctx, nil)
		return err
	})
}

// Close stops the proxy and Azurite. It is safe to call on a partly started environment.
func (e *AzureEnv) Close() error {
	var err error
	if e.proxy != nil {
		err = e.proxy.close()
	}
	if e.azurite != nil {
		e.azurite.stop()
	}
	return err
}

// Counts returns the requests the proxy saw since the last reset, by operation: "METHOD ?comp=..&restype=.."
// for a request with those query parameters ("PUT ?restype=container", "GET ?comp=properties&restype=service"),
// "METHOD blob?comp=.." for a blob's, and "METHOD level" otherwise, level account, container or blob ("PUT blob").
func (e *AzureEnv) Counts() map[string]int { return e.proxy.snapshot() }

// Mutations returns how many PUT, POST and DELETE requests the proxy saw since the last reset: the Blob
// REST API, like S3's, changes state with exactly these methods.
func (e *AzureEnv) Mutations() int { return sumIf(e.Counts(), isS3Mutation) }

// ResetCounts zeroes the proxy's counters.
func (e *AzureEnv) ResetCounts() { e.proxy.reset() }

// SetFault installs (nil: removes) a fault hook on the proxy.
func (e *AzureEnv) SetFault(f Fault) { e.proxy.setFault(f) }

// SetInjector installs (nil: removes) an injector on the proxy, after any Fault hook.
func (e *AzureEnv) SetInjector(i Injector) { e.proxy.setInjector(i) }

// ConnectionString is a storage connection string for the account through the proxy.
func (e *AzureEnv) ConnectionString() string {
	return fmt.Sprintf("DefaultEndpointsProtocol=http;AccountName=%s;AccountKey=%s;BlobEndpoint=%s;", e.Account, e.Key, e.Endpoint)
}

// AdminClient returns a client that talks to Azurite directly: its calls are neither counted nor faulted,
// so tests can arrange and inspect state without disturbing their assertions.
func (e *AzureEnv) AdminClient() *azblob.Client {
	return newAzureClient(e.direct+"/"+AzuriteAccount, 0)
}

// newAzureClient returns a shared-key client of the development account; maxRetries < 0 means one try.
func newAzureClient(serviceURL string, maxRetries int32) *azblob.Client {
	cred, err := azblob.NewSharedKeyCredential(AzuriteAccount, AzuriteKey)
	if err != nil { // the well-known key is valid base64
		panic(fmt.Sprintf("testenv: Azurite key: %v", err))
	}
	c, err := azblob.NewClientWithSharedKeyCredential(serviceURL, cred, &azblob.ClientOptions{
		ClientOptions: azcore.ClientOptions{Retry: policy.RetryOptions{MaxRetries: maxRetries}},
	})
	if err != nil { // only a malformed URL fails, and ours are built here
		panic(fmt.Sprintf("testenv: Azure client for %s: %v", serviceURL, err))
	}
	return c
}

// azureOperation names a path-style Blob service request (/account/container/blob) by its method and
// its comp and restype query parameters, which is how the REST API tells operations apart.
func azureOperation(r *http.Request) string {
	segments := strings.SplitN(strings.Trim(r.URL.Path, "/"), "/", 3)
	level := [...]string{"account", "container", "blob"}[len(segments)-1]
	q := r.URL.Query()
	var params []string
	for _, k := range []string{"comp", "restype"} { // already in sorted order
		if v := q.Get(k); v != "" {
			params = append(params, k+"="+v)
		}
	}
	if len(params) == 0 {
		return r.Method + " " + level
	}
	prefix := ""
	if level == "blob" {
		prefix = "blob"
	}
	return r.Method + " " + prefix + "?" + strings.Join(params, "&")
}
