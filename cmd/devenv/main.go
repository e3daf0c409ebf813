// Command devenv runs the local backends of the demo (SeaweedFS with SSE-KMS through kmsd, and Azurite's
// Blob service) until it is interrupted (SIGINT, SIGTERM). It prints shell export lines for them on stdout, then "ready" on stderr,
// so a script can start it in the background with stdout to a file, wait for "ready", and source the file.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/byob-agent/byob-agent/internal/testsupport/testenv"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "devenv:", err)
		os.Exit(1)
	}
}

func run() error {
	dir := flag.String("dir", "", "work directory for the backends' data (default: a temporary one, removed on exit; Azurite's in memory)")
	logsPath := flag.String("logs", "", "file that receives the backends' output (default: discarded)")
	flag.Parse()

	opts := testenv.S3Options{Dir: *dir}
	azOpts := testenv.AzuriteOptions{Dir: *dir}
	if *logsPath != "" {
		f, err := os.OpenFile(*logsPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("open log file: %w", err)
		}
		defer f.Close()
		// Both environments write to it; *os.File serialises concurrent writes.
		opts.Logs, azOpts.Logs = f, f
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	startCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	env, err := testenv.StartS3(startCtx, opts)
	if err != nil {
		return err
	}
	az, err := testenv.StartAzurite(startCtx, azOpts)
	if err != nil {
		return errors.Join(err, env.Close())
	}
	cancel()
	printExports(os.Stdout, env, az)
	fmt.Fprintln(os.Stderr, "ready")
	<-ctx.Done()
	return errors.Join(env.Close(), az.Close())
}

// printExports writes the environment as shell variables: the AWS SDK's own names for the credentials,
// region and per-service endpoints (which the SDK's default configuration picks up), the account id, and
// Azurite's Blob endpoint, account and (well-known development) key under the names the Azure CLI uses
// for account and key. The values (URLs, keys, digits) need no quoting beyond single quotes.
func printExports(w io.Writer, env *testenv.S3Env, az *testenv.AzureEnv) {
	for _, kv := range [][2]string{
		{"AWS_ENDPOINT_URL_S3", env.Endpoint},
		{"AWS_REGION", env.Region},
		{"AWS_ACCESS_KEY_ID", env.AccessKey},
		{"AWS_SECRET_ACCESS_KEY", env.SecretKey},
		{"AWS_ENDPOINT_URL_KMS", env.KMSEndpoint},
		{"BYOB_AWS_ACCOUNT_ID", env.AccountID},
		{"AZURE_BLOB_ENDPOINT", az.Endpoint},
		{"AZURE_STORAGE_ACCOUNT", az.Account},
		{"AZURE_STORAGE_KEY", az.Key},
	} {
		fmt.Fprintf(w, "export %s='%s'\n", kv[0], kv[1])
	}
}
