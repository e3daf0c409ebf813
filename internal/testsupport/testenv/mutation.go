package testenv

import "net/http"

// IsS3Mutation tells whether a request to the S3 or the Azure Blob proxy changes state: S3Mutations and
// AzureEnv.Mutations count exactly these. Fault hooks use it to act on mutations only.
func IsS3Mutation(r *http.Request) bool { return isS3Mutation(s3Operation(r)) }

// IsKMSMutation tells whether a request to the KMS proxy changes keys, aliases, policies or tags:
// KMSMutations counts exactly these.
func IsKMSMutation(r *http.Request) bool { return isKMSMutation(kmsOperation(r)) }
