package config

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// s3Credentials reads the S3 API credentials of aws, s3-compatible and coreweave profiles; session
// allows a session token (AWS STS credentials).
func (f *file) s3Credentials(pm mapping, ifMissing string, session bool) *Credentials {
	keys := []string{"accessKeyId", "secretAccessKey", "secretAccessKeyFile"}
	if session {
		keys = append(keys, "sessionToken", "sessionTokenFile")
	}
	m, ok := f.section(pm, "credentials", ifMissing, keys...)
	if !ok {
		return nil
	}
	c := &Credentials{}
	c.AccessKeyID, _ = f.str(m, "accessKeyId", mustSet)
	c.SecretAccessKey = f.secret(m, "secretAccessKey", "is required: set secretAccessKey or secretAccessKeyFile")
	if session {
		c.SessionToken = f.secret(m, "sessionToken", "")
	}
	return c
}

// gcsCredentials reads an optional service account key; unset means Application Default Credentials.
func (f *file) gcsCredentials(pm mapping) Secret {
	m, ok := f.section(pm, "credentials", "", "serviceAccountKey", "serviceAccountKeyFile")
	if !ok {
		return Secret{}
	}
	s := f.secret(m, "serviceAccountKey", "is required: set serviceAccountKey or serviceAccountKeyFile, or leave credentials out to use Application Default Credentials")
	// W&B's storage address needs client_email and private_key.
	f.checkSecret(m, "serviceAccountKey", s, func(v string) error { _, err := parseServiceAccountKey(v); return err })
	return s
}

// serviceAccountKey is what the agent reads of a Google service account key.
type serviceAccountKey struct {
	Type        string `json:"type"`
	ClientEmail string `json:"client_email"`
	PrivateKey  string `json:"private_key"`
	TokenURI    string `json:"token_uri"`
}

// parseServiceAccountKey parses a Google service account key that has client_email, private_key and
// the other fields need names. Its messages never quote the key.
func parseServiceAccountKey(v string, need ...string) (serviceAccountKey, error) {
	var k serviceAccountKey
	fields := append([]string{"client_email", "private_key"}, need...)
	if err := json.Unmarshal([]byte(v), &k); err != nil {
		if se := (*json.SyntaxError)(nil); errors.As(err, &se) {
			return k, fmt.Errorf("is not valid JSON (error at byte %d): a service account key is the JSON file Google issues; use serviceAccountKeyFile to read one from a file", se.Offset)
		}
		return k, fmt.Errorf("is not a service account key: expected a JSON object with the strings %s", list(fields, "and"))
	}
	values := map[string]string{"client_email": k.ClientEmail, "private_key": k.PrivateKey, "token_uri": k.TokenURI}
	var lacks []string
	for _, name := range fields {
		if values[name] == "" {
			lacks = append(lacks, name)
		}
	}
	switch {
	case k.Type != "" && k.Type != "service_account":
		return k, errors.New(`is not a service account key: its "type" is not "service_account"`)
	case lacks != nil:
		return k, fmt.Errorf("is not a service account key: it has no %s", list(lacks, "or"))
	}
	return k, nil
}

const azureCredentialChoice = "set one of accountKey (or accountKeyFile), connectionString (or connectionStringFile) or identity: true"

// azureCredentials reads how the agent authenticates to the storage account: exactly one way.
func (f *file) azureCredentials(pm mapping, p *Profile) {
	m, ok := f.section(pm, "credentials", "is required for provider azure: "+azureCredentialChoice,
		"accountKey", "accountKeyFile", "connectionString", "connectionStringFile", "identity")
	if !ok {
		return
	}
	ways := 0
	if m.has("accountKey") || m.has("accountKeyFile") {
		ways++
		p.AccountKey = f.secret(m, "accountKey", "")
		f.checkSecret(m, "accountKey", p.AccountKey, func(k string) error {
			if _, err := base64.StdEncoding.DecodeString(k); err != nil {
				return errors.New("is not base64: a storage account key is the base64 text Azure shows as key1 or key2")
			}
			return nil
		})
	}
	if m.has("connectionString") || m.has("connectionStringFile") {
		ways++
		p.ConnectionString = f.secret(m, "connectionString", "")
		f.checkSecret(m, "connectionString", p.ConnectionString, func(cs string) error { return checkConnectionString(cs, p.Account) })
	}
	if id, n := f.boolean(m, "identity"); id || n == nil && m.has("identity") { // a bad value is reported already
		ways++
		p.UseIdentity = id
	}
	switch {
	case ways == 0:
		f.problem(m.pos, m.field, "%s", azureCredentialChoice)
	case ways > 1:
		f.problem(m.pos, m.field, "set only one of accountKey, connectionString and identity: true")
	}
}

// checkConnectionString checks the form of an Azure Storage connection string and that it names the
// profile's account. Its messages never quote the string.
func checkConnectionString(cs, account string) error {
	var name string
	for _, part := range strings.Split(strings.TrimSuffix(cs, ";"), ";") {
		k, v, ok := strings.Cut(part, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return errors.New("is not an Azure Storage connection string (Key=Value pairs separated by ';')")
		}
		if strings.EqualFold(strings.TrimSpace(k), "AccountName") {
			name = v
		}
	}
	if name != "" && account != "" && name != account {
		return fmt.Errorf("names storage account %q, but the profile's account is %q", name, account)
	}
	return nil
}
