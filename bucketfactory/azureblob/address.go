package azureblob

import (
	"context"
	"fmt"
	"net/url"

	"github.com/byob-agent/byob-agent/bucketfactory"
)

// Address returns the container's storage address as W&B takes it (docs/wandb.md, "Storage addresses"):
//
//	az://:<url-encoded account key>@<storage account>/<container>
//
// It needs the account key (from the profile's key or connection string): with an identity there is
// none and it is an error. It makes no request. Errors never carry the key.
func (f *Factory) Address(_ context.Context, b bucketfactory.Bucket) (string, error) {
	if err := f.validate(b); err != nil {
		return "", err
	}
	if f.key == "" {
		return "", fmt.Errorf("container %q: W&B's Azure storage address carries the storage account key, and this profile authenticates with an identity: configure the account key or a connection string to produce it", b.Storage.Bucket)
	}
	// QueryEscape also escapes '+', '/' and '=' of the base64 key, which a userinfo would otherwise keep.
	return "az://:" + url.QueryEscape(f.key) + "@" + f.account + "/" + b.Storage.Bucket, nil
}
