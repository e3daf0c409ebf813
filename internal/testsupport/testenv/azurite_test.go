package testenv

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"
)

func TestStartAzurite(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var logs bytes.Buffer
	env, err := StartAzurite(ctx, AzuriteOptions{Logs: &logs})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			env.Close()
		}
		if t.Failed() {
			t.Logf("Azurite output:\n%s", logs.String())
		}
	}()
	if env.Account != "devstoreaccount1" || !strings.HasSuffix(env.Endpoint, "/devstoreaccount1") {
		t.Errorf("account %q at %q, want devstoreaccount1 at .../devstoreaccount1", env.Account, env.Endpoint)
	}

	// A client of the code under test goes through the proxy and is counted.
	client := newAzureClient(env.Endpoint, -1)
	if _, err := client.CreateContainer(ctx, "testenv-container", nil); err != nil {
		t.Fatalf("create container: %v", err)
	}
	svc := client.ServiceClient()
	want := &service.CORSRule{
		AllowedOrigins: to.Ptr("https://a.example"), AllowedMethods: to.Ptr("GET,PUT"),
		AllowedHeaders: to.Ptr("*"), ExposedHeaders: to.Ptr("ETag"), MaxAgeInSeconds: to.Ptr[int32](60),
	}
	if _, err := svc.SetProperties(ctx, &service.SetPropertiesOptions{
		CORS:                  []*service.CORSRule{want},
		DeleteRetentionPolicy: &service.RetentionPolicy{Enabled: to.Ptr(true), Days: to.Ptr[int32](7)},
	}); err != nil {
		t.Fatalf("set Blob service properties: %v", err)
	}
	got, err := svc.GetProperties(ctx, nil)
	if err != nil {
		t.Fatalf("get Blob service properties: %v", err)
	}
	if len(got.CORS) != 1 || *got.CORS[0].AllowedMethods != "GET,PUT" || *got.CORS[0].ExposedHeaders != "ETag" ||
		got.DeleteRetentionPolicy == nil || !*got.DeleteRetentionPolicy.Enabled || *got.DeleteRetentionPolicy.Days != 7 {
		t.Errorf("Blob service properties did not round-trip: CORS %d rule(s), retention %+v", len(got.CORS), got.DeleteRetentionPolicy)
	}
	wantCounts := map[string]int{
		"PUT ?restype=container":               1,
		"PUT ?comp=properties&restype=service": 1,
		"GET ?comp=properties&restype=service": 1,
	}
	if got := env.Counts(); !maps.Equal(got, wantCounts) {
		t.Errorf("Counts() = %v, want %v", got, wantCounts)
	}
	if got := env.Mutations(); got != 2 {
		t.Errorf("Mutations() = %d, want 2", got)
	}

	// The admin client bypasses the proxy.
	env.ResetCounts()
	if _, err := env.AdminClient().ServiceClient().NewContainerClient("testenv-container").GetProperties(ctx, nil); err != nil {
		t.Fatalf("admin client: %v", err)
	}
	if got := env.Counts(); len(got) != 0 {
		t.Errorf("admin client calls were counted: %v", got)
	}

	// A fault hook answers in Azurite's place.
	env.SetFault(func(r *http.Request) (int, bool) { return http.StatusForbidden, r.Method == http.MethodGet })
	_, err = svc.GetProperties(ctx, nil)
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusForbidden {
		t.Errorf("get properties with a 403 fault: err = %v, want a 403", err)
	}
	env.SetFault(nil)
	if _, err := svc.GetProperties(ctx, nil); err != nil {
		t.Errorf("get properties after removing the fault: %v", err)
	}

	// Close kills Azurite.
	pid := env.azurite.cmd.Process.Pid
	closed = true
	if err := env.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("Azurite (pid %d) still runs after Close", pid)
	}
}

func TestStartAzuritePersistent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	start := func() *AzureEnv {
		env, err := StartAzurite(ctx, AzuriteOptions{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
	env := start()
	_, err := env.AdminClient().CreateContainer(ctx, "kept", nil)
	env.Close()
	if err != nil {
		t.Fatalf("create container: %v", err)
	}
	env = start()
	defer env.Close()
	if _, err := env.AdminClient().ServiceClient().NewContainerClient("kept").GetProperties(ctx, nil); err != nil {
		t.Errorf("container created before a restart with the same Dir: %v", err)
	}
}

func TestAzuriteBinaryMissing(t *testing.T) {
	_, err := azuriteBinaryIn(t.TempDir())
	if err == nil || !strings.Contains(err.Error(), filepath.Join("tools", "azurite", "node_modules", ".bin", "azurite-blob")+" not found: run `make tools`") {
		t.Errorf("azuriteBinaryIn(empty dir) error = %v, want a hint to run make tools", err)
	}
}

func TestAzureOperation(t *testing.T) {
	tests := []struct {
		method, target, want string
	}{
		{"GET", "/devstoreaccount1?comp=list", "GET ?comp=list"},
		{"GET", "/devstoreaccount1?restype=service&comp=properties", "GET ?comp=properties&restype=service"},
		{"PUT", "/devstoreaccount1?comp=properties&restype=service", "PUT ?comp=properties&restype=service"},
		{"PUT", "/devstoreaccount1/c?restype=container", "PUT ?restype=container"},
		{"GET", "/devstoreaccount1/c?restype=container&comp=metadata", "GET ?comp=metadata&restype=container"},
		{"GET", "/devstoreaccount1/c?restype=container&comp=list&prefix=a", "GET ?comp=list&restype=container"},
		{"PUT", "/devstoreaccount1/c/a/b/probe", "PUT blob"},
		{"PUT", "/devstoreaccount1/c/k?comp=block&blockid=QQ==", "PUT blob?comp=block"},
		{"HEAD", "/devstoreaccount1/c/k", "HEAD blob"},
		{"DELETE", "/devstoreaccount1/c/k", "DELETE blob"},
		{"GET", "/devstoreaccount1", "GET account"},
		{"GET", "/devstoreaccount1/c", "GET container"},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(tt.method, tt.target, nil)
		if got := azureOperation(r); got != tt.want {
			t.Errorf("azureOperation(%s %s) = %q, want %q", tt.method, tt.target, got, tt.want)
		}
	}
}
