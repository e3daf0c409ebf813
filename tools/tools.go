//go:build tools

// Package tools pins the test backends byob-agent builds from source: SeaweedFS (a real S3 server)
// and local-kms (an AWS KMS emulator), plus helm, which lints and renders the chart in deploy/helm.
// They live in their own module so the agent's go.mod stays small.
package tools

import (
	_ "github.com/nsmithuk/local-kms/src"
	_ "github.com/seaweedfs/seaweedfs/weed"
	_ "helm.sh/helm/v3/cmd/helm"
)
