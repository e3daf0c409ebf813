// Command wandb-emulator serves the in-memory W&B SCIM emulator (internal/testsupport/wandbemu) for
// demos and manual tests. It listens on loopback by default and prints "listening on http://ADDR/scim"
// first. With -s3-endpoint or -azure-endpoint it checks a new team's bucket as W&B does.
//
// Besides /scim/..., it serves GET /_emulator/groups (every team with the storage it was created
// with, which W&B itself never shows) and GET /_emulator/counts (requests per route). Those two
// need no API key: they are for the demo on this machine.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/byob-agent/byob-agent/internal/testsupport/wandbemu"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "wandb-emulator:", err)
		os.Exit(1)
	}
}

// run serves until ctx is done, then shuts down gracefully.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("wandb-emulator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:0", "listen address (port 0 picks a free port)")
	apiKey := fs.String("api-key", "", "API key clients must present (default $WANDB_EMULATOR_API_KEY)")
	username := fs.String("username", "", "admin user name accepted with Basic <user>:<key>")
	s3Endpoint := fs.String("s3-endpoint", "", "S3 endpoint used to check AWS, MINIO and COREWEAVE buckets before creating a team; empty accepts any bucket")
	s3Region := fs.String("s3-region", "us-east-1", "region for -s3-endpoint")
	s3AccessKey := fs.String("s3-access-key", "", "access key for -s3-endpoint")
	s3SecretKey := fs.String("s3-secret-key", "", "secret key for -s3-endpoint")
	azureEndpoint := fs.String("azure-endpoint", "", "Blob service URL (with the account) used to check AZURE containers; empty: AZURE buckets cannot be checked")
	azureAccount := fs.String("azure-account", "", "storage account for -azure-endpoint")
	azureKey := fs.String("azure-key", "", "account key for -azure-endpoint")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *apiKey == "" {
		*apiKey = getenv("WANDB_EMULATOR_API_KEY")
	}
	if *apiKey == "" {
		return errors.New("an API key is required: pass -api-key or set WANDB_EMULATOR_API_KEY")
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", *addr, err)
	}
	base := "http://" + ln.Addr().String() + "/scim"
	o := wandbemu.Options{APIKey: *apiKey, Username: *username, BaseURL: base}
	// Without any checker the emulator accepts every bucket; with one, buckets of providers it cannot
	// check are refused, as W&B refuses what it cannot reach.
	checkers := wandbemu.ByProvider{}
	if *s3Endpoint != "" {
		checkers = wandbemu.NewS3Checker(*s3Endpoint, *s3Region, *s3AccessKey, *s3SecretKey).ForS3Providers()
	}
	if *azureEndpoint != "" {
		az, err := wandbemu.NewAzureChecker(*azureEndpoint, *azureAccount, *azureKey)
		if err != nil {
			return err
		}
		checkers["AZURE"] = az
	}
	if len(checkers) > 0 {
		o.Checker = checkers
	}
	emu := wandbemu.New(o)

	mux := http.NewServeMux()
	mux.Handle("/scim/", emu)
	mux.HandleFunc("GET /_emulator/groups", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, emu.Groups()) })
	mux.HandleFunc("GET /_emulator/counts", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, emu.Counts()) })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	fmt.Fprintf(stdout, "listening on %s\n", base)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	emu.Close() // release requests held by a Hang fault, or Shutdown would wait for them
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutting down: %w", err)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client went away: nothing to do
}
