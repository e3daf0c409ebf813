// Command devenv runs the local S3 backends of the demo (SeaweedFS with SSE-KMS through kmsd) until it is
// interrupted (SIGINT, SIGTERM). It prints shell export lines for them on stdout, then "ready" on stderr,
// so a script can start it in the background with stdout to a file, wait for "ready", and source the file.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/byob-agent/byob-agent/internal/testenv"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "devenv:", err)
		os.Exit(1)
	}
}

func run() error {
	dir := flag.String("dir", "", "work directory for the backends' data (default: a temporary one, removed on exit)")
	logsPath := flag.String("logs", "", "file that receives the backends' output (default: discarded)")
	flag.Parse()

	opts := testenv.S3Options{Dir: *dir}
	if *logsPath != "" {
		f, err := os.OpenFile(*logsPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("open log file: %w", err)
		}
		defer f.Close()
		opts.Logs = f
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	startCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	env, err := testenv.StartS3(startCtx, opts)
	cancel()
	if err != nil {
		return err
	}
	printExports(os.Stdout, env)
	fmt.Fprintln(os.Stderr, "ready")
	<-ctx.Done()
	return env.Close()
}

// printExports writes the environment as shell variables: the SDK's own names for the credentials,
// region and per-service endpoints (which the SDK's default configuration picks up), and the account id.
// The values (URLs, generated keys, digits) need no quoting beyond single quotes.
func printExports(w io.Writer, env *testenv.S3Env) {
	for _, kv := range [][2]string{
		{"AWS_ENDPOINT_URL_S3", env.Endpoint},
		{"AWS_REGION", env.Region},
		{"AWS_ACCESS_KEY_ID", env.AccessKey},
		{"AWS_SECRET_ACCESS_KEY", env.SecretKey},
		{"AWS_ENDPOINT_URL_KMS", env.KMSEndpoint},
		{"BYOB_AWS_ACCOUNT_ID", env.AccountID},
	} {
		fmt.Fprintf(w, "export %s='%s'\n", kv[0], kv[1])
	}
}
