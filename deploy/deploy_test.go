// Package deploy holds the deployment files (container image, Helm chart, systemd unit); its tests check
// that they keep the agent's invariants: one writer of the state, probes, sandboxing, no root.
package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/byob-agent/byob-agent/internal/testsupport/testenv"
)

const (
	chartDir     = "helm/byob-agent"
	allValues    = "helm/byob-agent/ci/all-values.yaml"
	configMount  = "/etc/byob-agent/config.yaml"
	releaseName  = "rel"
	releaseSpace = "byob"
)

// helmBin returns bin/helm, built by `make tools`.
func helmBin(t *testing.T) string {
	t.Helper()
	p, err := testenv.Binary("helm")
	if err != nil {
		t.Fatalf("helm: %v (run make tools)", err)
	}
	return p
}

func runHelm(t *testing.T, args ...string) ([]byte, error) {
	t.Helper()
	cmd := exec.Command(helmBin(t), args...)
	// Keep helm away from the user's repositories, plugins and kubeconfig.
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+home, "XDG_CACHE_HOME="+home,
		"XDG_DATA_HOME="+home, "KUBECONFIG="+filepath.Join(home, "kubeconfig"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, errors.New(err.Error() + ": " + stderr.String())
	}
	return out, nil
}

// doc is one rendered Kubernetes object.
type doc struct {
	Kind     string `yaml:"kind"`
	Metadata meta   `yaml:"metadata"`
	raw      []byte
}

type meta struct {
	Name        string            `yaml:"name"`
	Namespace   string            `yaml:"namespace"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// render runs `helm template` and parses every document it prints.
func render(t *testing.T, chart string, args ...string) []doc {
	t.Helper()
	out, err := runHelm(t, append([]string{"template", releaseName, chart, "--namespace", releaseSpace}, args...)...)
	if err != nil {
		t.Fatalf("helm template: %v", err)
	}
	var docs []doc
	dec := yaml.NewDecoder(bytes.NewReader(out))
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("rendered document %d does not parse: %v\n%s", len(docs)+1, err, out)
		}
		raw, err := yaml.Marshal(&n)
		if err != nil {
			t.Fatalf("re-encode document %d: %v", len(docs)+1, err)
		}
		var d doc
		if err := n.Decode(&d); err != nil {
			t.Fatalf("document %d: %v", len(docs)+1, err)
		}
		if d.Kind == "" {
			continue // a document holding only comments
		}
		d.raw = raw
		docs = append(docs, d)
	}
	return docs
}

// the returns the one object of a kind, decoded into T.
func the[T any](t *testing.T, docs []doc, kind string) T {
	t.Helper()
	var found []doc
	for _, d := range docs {
		if d.Kind == kind {
			found = append(found, d)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d objects of kind %s, want 1", len(found), kind)
	}
	var v T
	if err := yaml.Unmarshal(found[0].raw, &v); err != nil {
		t.Fatalf("decode %s: %v", kind, err)
	}
	return v
}

// named returns the object of a kind with a name, decoded into T.
func named[T any](t *testing.T, docs []doc, kind, name string) T {
	t.Helper()
	for _, d := range docs {
		if d.Kind == kind && d.Metadata.Name == name {
			var v T
			if err := yaml.Unmarshal(d.raw, &v); err != nil {
				t.Fatalf("decode %s %s: %v", kind, name, err)
			}
			return v
		}
	}
	t.Fatalf("no %s named %s", kind, name)
	var zero T
	return zero
}

func kinds(docs []doc) []string {
	var ks []string
	for _, d := range docs {
		ks = append(ks, d.Kind)
	}
	slices.Sort(ks)
	return ks
}

type deployment struct {
	Metadata meta `yaml:"metadata"`
	Spec     struct {
		Replicas *int `yaml:"replicas"`
		Strategy struct {
			Type string `yaml:"type"`
		} `yaml:"strategy"`
		Template struct {
			Metadata meta    `yaml:"metadata"`
			Spec     podSpec `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type podSpec struct {
	ServiceAccountName string          `yaml:"serviceAccountName"`
	SecurityContext    securityContext `yaml:"securityContext"`
	Containers         []container     `yaml:"containers"`
	Volumes            []volume        `yaml:"volumes"`
}

type securityContext struct {
	RunAsNonRoot             *bool  `yaml:"runAsNonRoot"`
	RunAsUser                *int64 `yaml:"runAsUser"`
	ReadOnlyRootFilesystem   *bool  `yaml:"readOnlyRootFilesystem"`
	AllowPrivilegeEscalation *bool  `yaml:"allowPrivilegeEscalation"`
	Capabilities             struct {
		Drop []string `yaml:"drop"`
	} `yaml:"capabilities"`
	SeccompProfile struct {
		Type string `yaml:"type"`
	} `yaml:"seccompProfile"`
}

type container struct {
	Args    []string `yaml:"args"`
	Ports   []port   `yaml:"ports"`
	EnvFrom []struct {
		SecretRef *struct {
			Name string `yaml:"name"`
		} `yaml:"secretRef"`
	} `yaml:"envFrom"`
	StartupProbe    *probe          `yaml:"startupProbe"`
	LivenessProbe   *probe          `yaml:"livenessProbe"`
	ReadinessProbe  *probe          `yaml:"readinessProbe"`
	Resources       resources       `yaml:"resources"`
	SecurityContext securityContext `yaml:"securityContext"`
	VolumeMounts    []volumeMount   `yaml:"volumeMounts"`
}

type port struct {
	Name          string `yaml:"name"`
	ContainerPort int    `yaml:"containerPort"`
}

type service struct {
	Spec struct {
		Ports []struct {
			Name       string `yaml:"name"`
			TargetPort string `yaml:"targetPort"`
		} `yaml:"ports"`
	} `yaml:"spec"`
}

type volumeMount struct {
	Name      string `yaml:"name"`
	MountPath string `yaml:"mountPath"`
	SubPath   string `yaml:"subPath"`
	ReadOnly  bool   `yaml:"readOnly"`
}

type probe struct {
	HTTPGet struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"`
	} `yaml:"httpGet"`
}

type resources struct {
	Requests map[string]string `yaml:"requests"`
	Limits   map[string]string `yaml:"limits"`
}

type volume struct {
	Name      string `yaml:"name"`
	ConfigMap *struct {
		Name string `yaml:"name"`
	} `yaml:"configMap"`
	PersistentVolumeClaim *struct {
		ClaimName string `yaml:"claimName"`
	} `yaml:"persistentVolumeClaim"`
	Secret *struct {
		SecretName  string `yaml:"secretName"`
		DefaultMode int    `yaml:"defaultMode"`
	} `yaml:"secret"`
}

type configMap struct {
	Metadata meta              `yaml:"metadata"`
	Data     map[string]string `yaml:"data"`
}

// agentConfig is the part of the agent's configuration the chart is responsible for.
type agentConfig struct {
	Server struct {
		Listen        string `yaml:"listen"`
		MetricsListen string `yaml:"metricsListen"`
		BaseURL       string `yaml:"baseURL"`
	} `yaml:"server"`
	State struct {
		Path string `yaml:"path"`
	} `yaml:"state"`
	Wandb map[string]any `yaml:"wandb"`
}

type pvc struct {
	Metadata meta `yaml:"metadata"`
	Spec     struct {
		AccessModes []string `yaml:"accessModes"`
	} `yaml:"spec"`
}

type secret struct {
	Metadata   meta              `yaml:"metadata"`
	StringData map[string]string `yaml:"stringData"`
}

type ingress struct {
	Spec struct {
		Rules []struct {
			Host string `yaml:"host"`
			HTTP struct {
				Paths []struct {
					Path string `yaml:"path"`
				} `yaml:"paths"`
			} `yaml:"http"`
		} `yaml:"rules"`
	} `yaml:"spec"`
}

type serviceMonitor struct {
	Metadata meta `yaml:"metadata"`
	Spec     struct {
		Endpoints []struct {
			Port string `yaml:"port"`
			Path string `yaml:"path"`
		} `yaml:"endpoints"`
	} `yaml:"spec"`
}

// writeValues writes a values file for one test.
func writeValues(t *testing.T, values string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(p, []byte(values), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// A config given as a map, with a chart-managed Secret and an Ingress: the chart fills in server and state.
const mapValues = `
config:
  wandb:
    scimURL: https://acme.wandb.io/scim
    auth:
      apiKey: ${WANDB_API_KEY}
  profiles:
    gcs-main:
      provider: gcs
      bucket: "acme-{{ .Team }}"
secrets:
  WANDB_API_KEY: not-a-real-key
secretMount:
  env: true
  files: false
  path: /etc/byob-agent/secrets
ingress:
  enabled: true
  hosts: [byob.example.com]
  tls:
    - secretName: byob-tls
      hosts: [byob.example.com]
`

func TestHelmLint(t *testing.T) {
	for _, args := range [][]string{nil, {"-f", allValues}} {
		if out, err := runHelm(t, append([]string{"lint", "--strict", chartDir}, args...)...); err != nil {
			t.Errorf("helm lint %v: %v\n%s", args, err, out)
		}
	}
}

func TestHelmTemplate(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		fullname   string
		wantKinds  []string
		mountPath  string
		port       int
		metrics    int    // the port of /metrics and the probes; 0: port (the probes use http)
		secret     string // Secret read by the pod; "" none
		secretEnv  bool
		secretFile string // mount path of the Secret's files; "" none
		baseURL    string
	}{
		{
			name:      "defaults",
			fullname:  "rel-byob-agent",
			wantKinds: []string{"ConfigMap", "Deployment", "PersistentVolumeClaim", "Service", "ServiceAccount"},
			mountPath: "/var/lib/byob-agent",
			port:      8080,
			metrics:   9090,
		},
		{
			name:      "probes and metrics on the main port",
			args:      []string{"-f", writeValues(t, "metricsPort: 0\nconfig: |\n  server: {listen: \"0.0.0.0:8080\"}\n  state: {path: /var/lib/byob-agent/state.db}\n  wandb: {scimURL: https://acme.wandb.io/scim}\n")},
			fullname:  "rel-byob-agent",
			wantKinds: []string{"ConfigMap", "Deployment", "PersistentVolumeClaim", "Service", "ServiceAccount"},
			mountPath: "/var/lib/byob-agent",
			port:      8080,
		},
		{
			name:     "every option",
			args:     []string{"-f", allValues},
			fullname: "byob",
			wantKinds: []string{"ConfigMap", "ConfigMap", "Deployment", "Ingress", "PersistentVolumeClaim", "PrometheusRule",
				"Service", "ServiceAccount", "ServiceMonitor"},
			mountPath:  "/data/byob",
			port:       9090,
			metrics:    9100,
			secret:     "byob-agent-secrets",
			secretEnv:  true,
			secretFile: "/etc/byob/secrets",
			baseURL:    "https://byob.example.com",
		},
		{
			name:     "config map and chart-managed secret",
			args:     []string{"-f", writeValues(t, mapValues)},
			fullname: "rel-byob-agent",
			wantKinds: []string{"ConfigMap", "Deployment", "Ingress", "PersistentVolumeClaim", "Secret", "Service",
				"ServiceAccount"},
			mountPath: "/var/lib/byob-agent",
			port:      8080,
			metrics:   9090,
			secret:    "rel-byob-agent",
			secretEnv: true,
			baseURL:   "https://byob.example.com",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			docs := render(t, chartDir, tt.args...)
			if got := kinds(docs); !slices.Equal(got, tt.wantKinds) {
				t.Fatalf("kinds %v, want %v", got, tt.wantKinds)
			}
			for _, d := range docs {
				// Monitoring objects may go where Prometheus and Grafana look for them.
				monitoring := d.Kind == "ServiceMonitor" || d.Kind == "PrometheusRule" || d.Metadata.Name == tt.fullname+"-dashboard"
				if !monitoring && d.Metadata.Namespace != releaseSpace {
					t.Errorf("%s %s in namespace %q, want %q", d.Kind, d.Metadata.Name, d.Metadata.Namespace, releaseSpace)
				}
			}
			dep := the[deployment](t, docs, "Deployment")
			checkDeployment(t, dep, tt.metrics != 0)
			c := dep.Spec.Template.Spec.Containers[0]
			wantPorts := []port{{"http", tt.port}}
			if tt.metrics != 0 {
				wantPorts = append(wantPorts, port{"metrics", tt.metrics})
			}
			if !slices.Equal(c.Ports, wantPorts) {
				t.Errorf("ports %+v, want %+v", c.Ports, wantPorts)
			}
			svc := the[service](t, docs, "Service")
			var svcPorts []string
			for _, p := range svc.Spec.Ports {
				svcPorts = append(svcPorts, p.Name+">"+p.TargetPort)
			}
			if want := []string{"http>http", "metrics>metrics"}[:len(wantPorts)]; !slices.Equal(svcPorts, want) {
				t.Errorf("Service ports %v, want %v", svcPorts, want)
			}

			cm := named[configMap](t, docs, "ConfigMap", tt.fullname)
			var cfg agentConfig
			if err := yaml.Unmarshal([]byte(cm.Data["config.yaml"]), &cfg); err != nil {
				t.Fatalf("ConfigMap's config.yaml does not parse: %v", err)
			}
			if cfg.Wandb["scimURL"] == nil {
				t.Errorf("ConfigMap's config.yaml has no wandb.scimURL:\n%s", cm.Data["config.yaml"])
			}
			if want := tt.mountPath + "/state.db"; cfg.State.Path != want {
				t.Errorf("config state.path %q, want %q", cfg.State.Path, want)
			}
			if want := "0.0.0.0:" + strconv.Itoa(tt.port); cfg.Server.Listen != want {
				t.Errorf("config server.listen %q, want %q", cfg.Server.Listen, want)
			}
			if want := "0.0.0.0:" + strconv.Itoa(tt.metrics); tt.metrics != 0 && cfg.Server.MetricsListen != want || tt.metrics == 0 && cfg.Server.MetricsListen != "" {
				t.Errorf("config server.metricsListen %q, want port %d", cfg.Server.MetricsListen, tt.metrics)
			}
			if cfg.Server.BaseURL != tt.baseURL {
				t.Errorf("config server.baseURL %q, want %q", cfg.Server.BaseURL, tt.baseURL)
			}
			if v := volumeNamed(t, dep, "config"); v.ConfigMap == nil || v.ConfigMap.Name != cm.Metadata.Name {
				t.Errorf("config volume %+v does not use ConfigMap %s", v, cm.Metadata.Name)
			}
			if m := mountNamed(c, "config"); m == nil || m.MountPath != configMount || m.SubPath != "config.yaml" || !m.ReadOnly {
				t.Errorf("config mount %+v, want %s read-only", m, configMount)
			}
			if !slices.Contains(c.Args, configMount) {
				t.Errorf("args %v do not name %s", c.Args, configMount)
			}

			claim := the[pvc](t, docs, "PersistentVolumeClaim")
			if v := volumeNamed(t, dep, "state"); v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != claim.Metadata.Name {
				t.Errorf("state volume %+v does not use claim %s", v, claim.Metadata.Name)
			}
			if m := mountNamed(c, "state"); m == nil || m.MountPath != tt.mountPath || m.ReadOnly {
				t.Errorf("state mount %+v, want writable at %s", m, tt.mountPath)
			}
			if claim.Metadata.Annotations["helm.sh/resource-policy"] != "keep" {
				t.Errorf("PVC annotations %v: want helm.sh/resource-policy: keep", claim.Metadata.Annotations)
			}

			checkSecret(t, dep, c, tt.secret, tt.secretEnv, tt.secretFile)
		})
	}
}

// checkDeployment asserts what holds for every set of values; separate says the probes use the
// metrics port.
func checkDeployment(t *testing.T, dep deployment, separate bool) {
	t.Helper()
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 1 {
		t.Errorf("replicas %v, want 1 (single writer)", dep.Spec.Replicas)
	}
	if dep.Spec.Strategy.Type != "Recreate" {
		t.Errorf("strategy %q, want Recreate (never two pods on the state)", dep.Spec.Strategy.Type)
	}
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(dep.Spec.Template.Metadata.Annotations["checksum/config"]) {
		t.Errorf("pod annotations %v: want checksum/config", dep.Spec.Template.Metadata.Annotations)
	}
	pod := dep.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	probePort := "http"
	if separate {
		probePort = "metrics"
	}
	for _, p := range []struct {
		name string
		got  *probe
		path string
	}{
		{"startup", c.StartupProbe, "/healthz"},
		{"liveness", c.LivenessProbe, "/healthz"},
		{"readiness", c.ReadinessProbe, "/readyz"},
	} {
		if p.got == nil || p.got.HTTPGet.Path != p.path || p.got.HTTPGet.Port != probePort {
			t.Errorf("%s probe %+v, want GET %s on port %s", p.name, p.got, p.path, probePort)
		}
	}
	for _, r := range []string{"cpu", "memory"} {
		if c.Resources.Requests[r] == "" || c.Resources.Limits[r] == "" {
			t.Errorf("resources %+v: want requests and limits of %s", c.Resources, r)
		}
	}
	if ps := pod.SecurityContext; !isTrue(ps.RunAsNonRoot) || ps.RunAsUser == nil || *ps.RunAsUser == 0 || ps.SeccompProfile.Type != "RuntimeDefault" {
		t.Errorf("pod securityContext %+v: want runAsNonRoot, a non-zero runAsUser, seccomp RuntimeDefault", ps)
	}
	sc := c.SecurityContext
	if !isTrue(sc.RunAsNonRoot) || !isTrue(sc.ReadOnlyRootFilesystem) || sc.AllowPrivilegeEscalation == nil ||
		*sc.AllowPrivilegeEscalation || !slices.Equal(sc.Capabilities.Drop, []string{"ALL"}) || sc.SeccompProfile.Type != "RuntimeDefault" {
		t.Errorf("container securityContext %+v: want runAsNonRoot, readOnlyRootFilesystem, no privilege escalation, drop ALL, seccomp RuntimeDefault", sc)
	}
}

// checkSecret asserts how the pod reads its Secret: env vars, files, or nothing when there is none.
func checkSecret(t *testing.T, dep deployment, c container, name string, env bool, files string) {
	t.Helper()
	var envFrom []string
	for _, e := range c.EnvFrom {
		if e.SecretRef != nil {
			envFrom = append(envFrom, e.SecretRef.Name)
		}
	}
	if want := []string{name}; env && !slices.Equal(envFrom, want) || !env && envFrom != nil {
		t.Errorf("envFrom secrets %v, want %v (env %v)", envFrom, name, env)
	}
	m := mountNamed(c, "secrets")
	if files == "" {
		if m != nil {
			t.Errorf("secret files mounted at %s, want none", m.MountPath)
		}
		return
	}
	if m == nil || m.MountPath != files || !m.ReadOnly {
		t.Fatalf("secrets mount %+v, want read-only at %s", m, files)
	}
	v := volumeNamed(t, dep, "secrets")
	if v.Secret == nil || v.Secret.SecretName != name || v.Secret.DefaultMode != 0o440 {
		t.Errorf("secrets volume %+v, want Secret %s with mode 0440", v, name)
	}
}

func TestChartManagedSecret(t *testing.T) {
	docs := render(t, chartDir, "-f", writeValues(t, mapValues))
	s := the[secret](t, docs, "Secret")
	if s.StringData["WANDB_API_KEY"] != "not-a-real-key" {
		t.Errorf("Secret stringData %v lacks WANDB_API_KEY", s.StringData)
	}
	dep := the[deployment](t, docs, "Deployment")
	if dep.Spec.Template.Metadata.Annotations["checksum/secret"] == "" {
		t.Error("no checksum/secret annotation: rotating a chart-managed secret would not roll the pod")
	}
}

func TestHelmTemplateOptions(t *testing.T) {
	docs := render(t, chartDir, "-f", allValues)
	ing := the[ingress](t, docs, "Ingress")
	if len(ing.Spec.Rules) != 1 || ing.Spec.Rules[0].Host != "byob.example.com" {
		t.Fatalf("ingress rules %+v, want one for byob.example.com", ing.Spec.Rules)
	}
	var paths []string
	for _, p := range ing.Spec.Rules[0].HTTP.Paths {
		paths = append(paths, p.Path)
	}
	// Health and metrics stay inside the cluster.
	if want := []string{"/scim/v2", "/webhooks"}; !slices.Equal(paths, want) {
		t.Errorf("ingress paths %v, want %v", paths, want)
	}
	sm := the[serviceMonitor](t, docs, "ServiceMonitor")
	if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Path != "/metrics" || sm.Spec.Endpoints[0].Port != "metrics" {
		t.Errorf("ServiceMonitor endpoints %+v, want /metrics on port metrics", sm.Spec.Endpoints)
	}
	if sm.Metadata.Namespace != "monitoring" || sm.Metadata.Labels["release"] != "kube-prometheus-stack" {
		t.Errorf("ServiceMonitor metadata %+v", sm.Metadata)
	}
	cm := named[configMap](t, docs, "ConfigMap", "byob")
	if !strings.HasPrefix(cm.Data["config.yaml"], "# Verbatim text") {
		t.Errorf("a string config is not kept verbatim:\n%s", cm.Data["config.yaml"])
	}
	if !strings.Contains(cm.Data["config.yaml"], `bucket: "acme-wandb-{{ .Team }}"`) {
		t.Error("the agent's {{ .Team }} template did not pass through Helm untouched")
	}
}

func TestConfigChecksum(t *testing.T) {
	checksum := func(values string) string {
		dep := the[deployment](t, render(t, chartDir, "-f", writeValues(t, values)), "Deployment")
		return dep.Spec.Template.Metadata.Annotations["checksum/config"]
	}
	base := checksum("logLevel: info\n")
	if got := checksum("logLevel: debug\n"); got != base {
		t.Errorf("checksum changed with logLevel only: %s -> %s", base, got)
	}
	for name, values := range map[string]string{
		"string": "config: |\n  server: {listen: \"0.0.0.0:8080\", metricsListen: \"0.0.0.0:9090\"}\n  state: {path: /var/lib/byob-agent/state.db}\n  sync: {concurrency: 4}\n",
		"map":    mapValues,
	} {
		if got := checksum(values); got == base {
			t.Errorf("%s config: checksum/config unchanged (%s): a new config would not roll the pod", name, got)
		}
	}
}

func TestHelmTemplateRefuses(t *testing.T) {
	tests := []struct {
		name, values, want string
	}{
		{"state off the volume", "config: |\n  server: {listen: \"0.0.0.0:8080\"}\n  state: {path: /tmp/state.db}\n", "not under persistence.mountPath"},
		{"no state path", "config: |\n  server: {listen: \"0.0.0.0:8080\"}\n", "state.path must be set"},
		{"loopback listener", "config: |\n  server: {listen: \"127.0.0.1:8080\"}\n  state: {path: /var/lib/byob-agent/state.db}\n", "loopback"},
		{"listener on another port", "config:\n  server: {listen: \"0.0.0.0:9000\"}\n", "does not use containerPort 8080"},
		{"no metrics listener", "config: |\n  server: {listen: \"0.0.0.0:8080\"}\n  state: {path: /var/lib/byob-agent/state.db}\n", "server.metricsListen must be set"},
		{"metrics listener on another port", "config:\n  server: {metricsListen: \"0.0.0.0:9100\"}\n", "does not use metricsPort 9090"},
		{"metrics listener on loopback", "config:\n  server: {metricsListen: \"127.0.0.1:9090\"}\n", "loopback"},
		{"metrics listener without metricsPort", "metricsPort: 0\nconfig:\n  server: {metricsListen: \"0.0.0.0:9090\"}\n", "metricsPort is 0"},
		{"metricsPort is containerPort", "metricsPort: 8080\n", "metricsPort 8080 is containerPort"},
		{"invalid YAML", "config: \"a: [\"\n", "not valid YAML"},
		{"ingress without hosts", "ingress: {enabled: true}\n", "at least one host"},
		{"unknown log level", "logLevel: verbose\n", "logLevel"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := runHelm(t, "template", releaseName, chartDir, "-f", writeValues(t, tt.values))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("helm template: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestNotes renders NOTES.txt (which `helm template` skips) through a copy of the chart with one more
// template that includes the notes.
func TestNotes(t *testing.T) {
	chart := filepath.Join(t.TempDir(), "byob-agent")
	if err := os.CopyFS(chart, os.DirFS(chartDir)); err != nil {
		t.Fatal(err)
	}
	notesTemplate := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\n  namespace: byob\ndata:\n  notes: {{ include \"byob-agent.notes\" . | toJson }}\n"
	if err := os.WriteFile(filepath.Join(chart, "templates", "notes-for-test.yaml"), []byte(notesTemplate), 0o600); err != nil {
		t.Fatal(err)
	}
	notes := func(args ...string) string {
		for _, d := range render(t, chart, args...) {
			if d.Kind == "ConfigMap" && d.Metadata.Name == "notes" {
				var cm configMap
				if err := yaml.Unmarshal(d.raw, &cm); err != nil {
					t.Fatal(err)
				}
				return cm.Data["notes"]
			}
		}
		t.Fatal("notes not rendered")
		return ""
	}
	tests := []struct {
		name    string
		args    []string
		want    []string
		notWant []string
	}{
		{
			name: "defaults",
			want: []string{"SCIM 2.0: off", "Webhooks: none configured", "port-forward svc/rel-byob-agent 8080",
				"Set server.baseURL", "WARNING: no Secret"},
			notWant: []string{"persistence.enabled=false"},
		},
		{
			name: "every option",
			args: []string{"-f", allValues},
			want: []string{"https://byob.example.com/scim/v2", "https://byob.example.com/webhooks/okta",
				"https://byob.example.com/webhooks/graph", "https://byob.example.com/webhooks/generic",
				"ServiceMonitor byob"},
			notWant: []string{"port-forward", "WARNING", "Set server.baseURL"},
		},
		{
			name: "no persistence",
			args: []string{"--set", "persistence.enabled=false"},
			want: []string{"persistence.enabled=false"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := notes(tt.args...)
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("notes lack %q:\n%s", w, got)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(got, w) {
					t.Errorf("notes contain %q:\n%s", w, got)
				}
			}
		})
	}
}

// unit is a parsed systemd unit: section -> key -> values (a key may repeat).
type unit map[string]map[string][]string

func parseUnit(t *testing.T, path string) unit {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]")
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" || strings.HasSuffix(line, `\`) {
				t.Fatalf("%s:%d: not a key=value line in a section: %q", path, n, line)
			}
			u[section][strings.TrimSpace(k)] = append(u[section][strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

func TestSystemdUnit(t *testing.T) {
	u := parseUnit(t, "systemd/byob-agent.service")
	svc := u["Service"]
	for _, tt := range []struct{ key, want string }{
		{"ExecStart", "/usr/local/bin/byob-agent run --config /etc/byob-agent/config.yaml"},
		{"ExecReload", "/bin/kill -HUP $MAINPID"},
		{"Restart", "on-failure"},
		{"DynamicUser", "yes"},
		{"StateDirectory", "byob-agent"},
		{"ConfigurationDirectory", "byob-agent"},
		{"ProtectSystem", "strict"},
		{"ProtectHome", "yes"},
		{"PrivateTmp", "yes"},
		{"PrivateDevices", "yes"},
		{"NoNewPrivileges", "yes"},
		{"CapabilityBoundingSet", ""},
		{"AmbientCapabilities", ""},
		{"RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"},
		{"RestrictNamespaces", "yes"},
		{"MemoryDenyWriteExecute", "yes"},
		{"SystemCallArchitectures", "native"},
	} {
		if got := svc[tt.key]; !slices.Equal(got, []string{tt.want}) {
			t.Errorf("[Service] %s = %q, want exactly %q", tt.key, got, tt.want)
		}
	}
	if got := svc["SystemCallFilter"]; len(got) == 0 || got[0] != "@system-service" {
		t.Errorf("[Service] SystemCallFilter = %q, want @system-service first", got)
	}
	if len(svc["LoadCredential"]) == 0 {
		t.Error("[Service] has no LoadCredential: secrets would have to sit in the environment or the config")
	}
	for _, c := range svc["LoadCredential"] {
		if id, path, ok := strings.Cut(c, ":"); !ok || id == "" || !filepath.IsAbs(path) {
			t.Errorf("[Service] LoadCredential=%s, want ID:/absolute/path", c)
		}
	}
	if _, ok := svc["User"]; ok {
		t.Error("[Service] sets User=: DynamicUser allocates one")
	}
	if got := u["Install"]["WantedBy"]; !slices.Equal(got, []string{"multi-user.target"}) {
		t.Errorf("[Install] WantedBy = %q", got)
	}
}

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct{ cmd, args string }

func parseDockerfile(t *testing.T, path string) [][]instruction {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var stages [][]instruction
	var cur strings.Builder
	for _, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur.Len() == 0) {
			continue
		}
		if s, ok := strings.CutSuffix(trimmed, `\`); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(trimmed)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		cur.Reset()
		in := instruction{strings.ToUpper(cmd), strings.Join(strings.Fields(args), " ")}
		if in.cmd == "FROM" {
			stages = append(stages, nil)
		}
		if len(stages) > 0 {
			stages[len(stages)-1] = append(stages[len(stages)-1], in)
		}
	}
	return stages
}

func TestDockerfile(t *testing.T) {
	// Docker cannot run in the test environment: the file is checked statically.
	stages := parseDockerfile(t, "Dockerfile")
	if len(stages) < 2 {
		t.Fatalf("%d stages, want a builder and a final stage", len(stages))
	}
	all := func(stage []instruction, cmd string) []string {
		var args []string
		for _, in := range stage {
			if in.cmd == cmd {
				args = append(args, in.args)
			}
		}
		return args
	}
	build, final := stages[0], stages[len(stages)-1]
	if from := all(build, "FROM")[0]; !strings.Contains(from, "golang:") {
		t.Errorf("builder FROM %q, want golang", from)
	}
	runs := strings.Join(all(build, "RUN"), "\n")
	for _, want := range []string{"CGO_ENABLED=0", "go build", "./cmd/agent", "--mount=type=cache,target=/go/pkg/mod", "--mount=type=cache,target=/root/.cache/go-build"} {
		if !strings.Contains(runs, want) {
			t.Errorf("builder RUNs lack %q", want)
		}
	}
	if from := all(final, "FROM")[0]; !strings.Contains(from, "distroless/static") && from != "scratch" {
		t.Errorf("final FROM %q, want distroless/static or scratch (a static binary needs no libc)", from)
	}
	users := all(final, "USER")
	if len(users) == 0 {
		t.Fatal("final stage has no USER: it would run as root")
	}
	if user, _, _ := strings.Cut(users[len(users)-1], ":"); user == "0" || user == "root" || !regexp.MustCompile(`^[0-9]+$`).MatchString(user) {
		t.Errorf("USER %q, want a numeric non-root uid (runAsNonRoot can only check numbers)", users[len(users)-1])
	}
	for _, tt := range []struct{ cmd, want string }{
		{"ENTRYPOINT", `["/byob-agent"]`},
		{"CMD", `["run", "--config", "/etc/byob-agent/config.yaml"]`},
		{"EXPOSE", "8080"},
	} {
		if got := all(final, tt.cmd); !slices.Equal(got, []string{tt.want}) {
			t.Errorf("%s %q, want %s", tt.cmd, got, tt.want)
		}
	}
	if copies := strings.Join(all(final, "COPY"), "\n"); !strings.Contains(copies, " /byob-agent") {
		t.Errorf("final stage does not COPY the binary to /byob-agent:\n%s", copies)
	}
	labels := strings.Join(all(final, "LABEL"), " ")
	for _, l := range []string{"title", "source", "version", "revision", "created"} {
		if !strings.Contains(labels, "org.opencontainers.image."+l+"=") {
			t.Errorf("no OCI label org.opencontainers.image.%s", l)
		}
	}
}

func mountNamed(c container, name string) *volumeMount {
	for i := range c.VolumeMounts {
		if c.VolumeMounts[i].Name == name {
			return &c.VolumeMounts[i]
		}
	}
	return nil
}

func volumeNamed(t *testing.T, dep deployment, name string) volume {
	t.Helper()
	for _, v := range dep.Spec.Template.Spec.Volumes {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("no volume %q", name)
	return volume{}
}

func isTrue(b *bool) bool { return b != nil && *b }
