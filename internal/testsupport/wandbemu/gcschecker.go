package wandbemu

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/byob-agent/byob-agent/scim/wandb"
)

// GCSChecker does W&B's bucket check on Google Cloud Storage through the JSON API (the strict GCS fake in
// tests): the bucket exists, soft delete is on, a CORS entry allows GET, HEAD and PUT from any origin and
// exposes ETag, and W&B's service account holds roles/storage.admin on it. W&B documents each of these
// for team buckets on GCS (https://docs.wandb.ai/platform/hosting/data-security/secure-storage-connector);
// without soft delete it refuses the bucket with "Bucket does not have soft deletion enabled", and
// without the grant its checks get 403. That W&B checks CORS at team creation is an inference.
type GCSChecker struct {
	Endpoint       string // JSON API base, e.g. http://127.0.0.1:4443 (without /storage/v1)
	ServiceAccount string // W&B's service account email
	Client         *http.Client
}

// gcsCORS is one entry of a bucket's cors list (responseHeader is what GCS exposes).
type gcsCORS struct {
	Origin         []string `json:"origin"`
	Method         []string `json:"method"`
	ResponseHeader []string `json:"responseHeader"`
}

// CheckBucket reports why sb is not usable, or nil.
func (c GCSChecker) CheckBucket(ctx context.Context, sb wandb.StorageBucket) error {
	var b struct {
		SoftDeletePolicy *struct {
			RetentionDurationSeconds string `json:"retentionDurationSeconds"`
		} `json:"softDeletePolicy"`
		CORS []gcsCORS `json:"cors"`
	}
	base := strings.TrimRight(c.Endpoint, "/") + "/storage/v1/b/" + url.PathEscape(sb.Name)
	if found, err := c.get(ctx, base, &b); err != nil {
		return err
	} else if !found {
		return fmt.Errorf("bucket %q does not exist", sb.Name)
	}
	if b.SoftDeletePolicy == nil {
		return fmt.Errorf("bucket %q: Bucket does not have soft deletion enabled", sb.Name)
	}
	if n, _ := strconv.ParseInt(b.SoftDeletePolicy.RetentionDurationSeconds, 10, 64); n <= 0 {
		return fmt.Errorf("bucket %q: Bucket does not have soft deletion enabled", sb.Name)
	}
	if !slices.ContainsFunc(b.CORS, func(r gcsCORS) bool { return corsAllows(r.Origin, r.Method, r.ResponseHeader) }) {
		return fmt.Errorf("bucket %q: no CORS entry allows GET, HEAD and PUT from any origin and exposes ETag", sb.Name)
	}
	var policy struct {
		Bindings []struct {
			Role    string   `json:"role"`
			Members []string `json:"members"`
		} `json:"bindings"`
	}
	if _, err := c.get(ctx, base+"/iam", &policy); err != nil {
		return err
	}
	for _, bd := range policy.Bindings {
		if bd.Role == "roles/storage.admin" && slices.Contains(bd.Members, "serviceAccount:"+c.ServiceAccount) {
			return nil
		}
	}
	return fmt.Errorf("bucket %q: 403: %s lacks roles/storage.admin on the bucket", sb.Name, c.ServiceAccount)
}

// get decodes a JSON API answer into v; found is false on 404.
func (c GCSChecker) get(ctx context.Context, u string, v any) (found bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return false, err
	}
	hc := c.Client
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return false, fmt.Errorf("GCS is not reachable: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return false, nil
	case resp.StatusCode != http.StatusOK:
		return false, fmt.Errorf("GCS answered %d: %s", resp.StatusCode, body)
	}
	return true, json.Unmarshal(body, v)
}
