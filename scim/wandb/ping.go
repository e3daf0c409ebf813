package wandb

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
)

// Ping asks W&B for one team, which proves the SCIM API is reachable and takes the credentials
// without changing anything. doctor uses it; an *APIError says what W&B refused.
func (c *Client) Ping(ctx context.Context) error {
	q := url.Values{"startIndex": {"1"}, "count": {"1"}}
	if _, _, err := c.do(ctx, http.MethodGet, "/Groups", q, nil); err != nil {
		return fmt.Errorf("reaching W&B's SCIM API: %w", err)
	}
	return nil
}
