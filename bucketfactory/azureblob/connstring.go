package azureblob

import (
	"cmp"
	"errors"
	"fmt"
	"strings"
)

// connString is what the agent needs of a storage connection string.
type connString struct {
	account, key string
	endpoint     string // "" when the string names none
}

// parseConnectionString reads "Name=value;..." pairs (names without regard to case, as Azure's tools
// read them). It needs AccountName and AccountKey: W&B's address carries the key, so SAS-only and
// development-storage shortcuts are refused. Its errors name fields, never values.
func parseConnectionString(s string) (connString, error) {
	fields := map[string]string{}
	for part := range strings.SplitSeq(s, ";") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		name, value, ok := strings.Cut(part, "=") // a base64 key ends in '=': only the first one separates
		if !ok {
			return connString{}, errors.New("azureblob: the connection string has a part without '=': want Name=value pairs separated by ';'")
		}
		fields[strings.ToLower(strings.TrimSpace(name))] = strings.TrimSpace(value)
	}
	if strings.EqualFold(fields["usedevelopmentstorage"], "true") {
		return connString{}, errors.New("azureblob: UseDevelopmentStorage connection strings are not supported: give AccountName, AccountKey and BlobEndpoint")
	}
	cs := connString{account: fields["accountname"], key: fields["accountkey"], endpoint: fields["blobendpoint"]}
	if cs.account == "" || cs.key == "" {
		return connString{}, errors.New("azureblob: the connection string must hold AccountName and AccountKey (a SAS is not enough: W&B's storage address needs the account key)")
	}
	if cs.endpoint == "" && (fields["endpointsuffix"] != "" || fields["defaultendpointsprotocol"] != "") {
		cs.endpoint = fmt.Sprintf("%s://%s.blob.%s/", cmp.Or(fields["defaultendpointsprotocol"], "https"), cs.account, cmp.Or(fields["endpointsuffix"], "core.windows.net"))
	}
	return cs, nil
}
