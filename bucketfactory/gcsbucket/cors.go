package gcsbucket

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"cloud.google.com/go/storage"
)

// wandbMethods are the methods W&B's browser uploads and downloads use through pre-signed URLs.
var wandbMethods = []string{"GET", "HEAD", "PUT"}

// wandbCORS is the entry W&B documents. GCS's responseHeader is the list of headers exposed to the browser.
func wandbCORS() storage.CORS {
	return storage.CORS{
		Origins:         []string{"*"},
		Methods:         slices.Clone(wandbMethods),
		ResponseHeaders: []string{"ETag"},
		MaxAge:          3000 * time.Second,
	}
}

// servesWandb tells whether an entry lets W&B's browser code do its work: any origin, W&B's methods and
// the ETag header exposed. A broader entry (more methods or headers) serves too; the max age only tunes
// how long browsers cache a preflight, so it is not compared.
func servesWandb(c storage.CORS) bool {
	if !slices.Contains(c.Origins, "*") || !slices.ContainsFunc(c.ResponseHeaders, func(h string) bool { return strings.EqualFold(h, "ETag") }) {
		return false
	}
	for _, m := range wandbMethods {
		if !slices.ContainsFunc(c.Methods, func(x string) bool { return strings.EqualFold(x, m) }) {
			return false
		}
	}
	return true
}

// hasWandbCORS tells whether one of the entries serves W&B.
func hasWandbCORS(entries []storage.CORS) bool { return slices.ContainsFunc(entries, servesWandb) }

// mergeCORS returns entries with one that serves W&B. Others' entries are kept. A missing entry goes
// first: GCS answers a request with the first entry matching its origin and method, and a broader entry
// of someone else's could otherwise hide the exposed ETag header. changed is false when an entry already
// serves W&B.
func mergeCORS(entries []storage.CORS) (merged []storage.CORS, changed bool) {
	if hasWandbCORS(entries) {
		return entries, false
	}
	return append([]storage.CORS{wandbCORS()}, entries...), true
}

// describeCORS summarises entries for a check result or a change.
func describeCORS(entries ...storage.CORS) string {
	if len(entries) == 0 {
		return "no CORS entries"
	}
	parts := make([]string, len(entries))
	for i, c := range entries {
		parts[i] = fmt.Sprintf("origins %s, methods %s, response headers %s, max age %d s",
			listOrNone(c.Origins), listOrNone(c.Methods), listOrNone(c.ResponseHeaders), int64(c.MaxAge/time.Second))
	}
	return strings.Join(parts, "; ")
}

func listOrNone(ss []string) string {
	if len(ss) == 0 {
		return "none"
	}
	return strings.Join(ss, ",")
}
