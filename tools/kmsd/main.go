// Command kmsd serves local-kms (an AWS KMS emulator) on a loopback address only.
// local-kms's own binary listens on every interface, so we wrap its request handler instead.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"

	kms "github.com/nsmithuk/local-kms/src"
	"github.com/nsmithuk/local-kms/src/config"
	"github.com/nsmithuk/local-kms/src/data"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address (loopback)")
	dir := flag.String("data", "", "database directory (required)")
	region := flag.String("region", "us-east-1", "AWS region reported in key ARNs")
	account := flag.String("account", "111122223333", "AWS account id reported in key ARNs")
	flag.Parse()
	if *dir == "" {
		log.Fatal("kmsd: -data is required")
	}
	config.AWSRegion = *region
	config.AWSAccountId = *account
	config.DatabasePath = *dir
	db := data.NewDatabase(*dir)
	defer db.Close()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatalf("kmsd: listen %s: %v", *addr, err)
	}
	// The harness reads the bound address from the first line of stdout.
	fmt.Fprintf(os.Stdout, "listening on %s\n", ln.Addr())
	log.Fatal(http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		kms.HandleRequest(w, r, db)
	})))
}
