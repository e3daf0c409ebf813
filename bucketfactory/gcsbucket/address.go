package gcsbucket

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/byob-agent/byob-agent/bucketfactory"
	"github.com/byob-agent/byob-agent/team"
)

// serviceAccountKey is what the storage address needs from a service account key file.
type serviceAccountKey struct {
	Type        string `json:"type"`
	ClientEmail string `json:"client_email"`
	PrivateKey  string `json:"private_key"`
}

// parseServiceAccountKey reads a key file. Its errors never quote the file: it holds the private key.
func parseServiceAccountKey(data []byte) (*serviceAccountKey, error) {
	var k serviceAccountKey
	if err := json.Unmarshal(data, &k); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("gcs credentials JSON is not valid JSON (error at byte %d)", se.Offset)
		}
		return nil, errors.New("gcs credentials JSON is not a service account key file")
	}
	switch {
	case k.Type != "service_account":
		return nil, fmt.Errorf("gcs credentials JSON has type %q: W&B's gs:// address needs a service account key (type service_account)", k.Type)
	case !strings.Contains(k.ClientEmail, "@"):
		return nil, errors.New("gcs credentials JSON has no client_email")
	case !strings.Contains(k.PrivateKey, "PRIVATE KEY"):
		return nil, errors.New("gcs credentials JSON has no PEM private_key")
	}
	return &k, nil
}

// Address is gs://<service account email>:<url-encoded private key>@<bucket>, as W&B takes it.
func (f *Factory) Address(ctx context.Context, b bucketfactory.Bucket) (string, error) {
	if err := team.ValidateBucketName(team.ProviderGCS, b.Storage.Bucket); err != nil {
		return "", err
	}
	if f.key == nil {
		return "", fmt.Errorf("the gs:// address of bucket %q needs a service account key: set the gcs profile's credentials JSON", b.Storage.Bucket)
	}
	return "gs://" + f.key.ClientEmail + ":" + escapeKey(f.key.PrivateKey) + "@" + b.Storage.Bucket, nil
}

// escapeKey percent-encodes everything in the PEM key but letters, digits and "-_.~". Neither
// url.QueryEscape (a space becomes "+", which a URL parser's userinfo keeps as "+") nor url.PathEscape
// (a "+" of the base64 stays, which a query unescaper turns into a space) survives every decoder W&B
// might use; with only %XX escapes, url.Parse's Password, QueryUnescape and PathUnescape all agree.
func escapeKey(key string) string {
	return strings.ReplaceAll(url.QueryEscape(key), "+", "%20")
}
