package deploy

import (
	"slices"
	"strings"
	"testing"
)

// haDeployment is what TestHelmTemplatePostgres reads of the Deployment beyond type deployment.
type haDeployment struct {
	Spec struct {
		Replicas *int `yaml:"replicas"`
		Strategy struct {
			Type          string `yaml:"type"`
			RollingUpdate struct {
				MaxSurge       any `yaml:"maxSurge"`
				MaxUnavailable any `yaml:"maxUnavailable"`
			} `yaml:"rollingUpdate"`
		} `yaml:"strategy"`
		Template struct {
			Spec struct {
				Containers []struct {
					Env []struct {
						Name      string `yaml:"name"`
						ValueFrom struct {
							SecretKeyRef struct {
								Name string `yaml:"name"`
								Key  string `yaml:"key"`
							} `yaml:"secretKeyRef"`
						} `yaml:"valueFrom"`
					} `yaml:"env"`
				} `yaml:"containers"`
				Volumes []struct {
					Name     string    `yaml:"name"`
					EmptyDir *struct{} `yaml:"emptyDir"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type pdb struct {
	Spec struct {
		MaxUnavailable int            `yaml:"maxUnavailable"`
		Selector       map[string]any `yaml:"selector"`
	} `yaml:"spec"`
}

// pgConfig is a config keeping the state in PostgreSQL, its DSN from the environment.
const pgConfig = "config: |\n  server: {listen: \"0.0.0.0:8080\", metricsListen: \"0.0.0.0:9090\"}\n  state:\n    postgres: {dsn: \"${BYOB_STATE_POSTGRES_DSN}\"}\n  wandb: {scimURL: https://acme.wandb.io/scim}\n"

// TestHelmTemplatePostgres: with the PostgreSQL state the chart runs the replicas asked for, rolls them
// (RollingUpdate, never below the count), adds a PodDisruptionBudget past one replica, takes the DSN
// from a Secret, and claims no state volume.
func TestHelmTemplatePostgres(t *testing.T) {
	tests := []struct {
		name      string
		values    string
		replicas  int
		wantKinds []string
		dsnSecret string // Secret of BYOB_STATE_POSTGRES_DSN's secretKeyRef; "" none (the main Secret's env)
	}{
		{"three replicas", pgConfig + "replicas: 3\npostgres: {dsnSecret: {name: byob-pg, key: uri}}\n", 3,
			[]string{"ConfigMap", "Deployment", "PodDisruptionBudget", "Service", "ServiceAccount"}, "byob-pg"},
		{"one replica with the DSN in the main Secret", pgConfig + "existingSecret: byob-secrets\n", 1,
			[]string{"ConfigMap", "Deployment", "Service", "ServiceAccount"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			docs := render(t, chartDir, "-f", writeValues(t, tt.values))
			if got := kinds(docs); !slices.Equal(got, tt.wantKinds) {
				t.Fatalf("kinds %v, want %v", got, tt.wantKinds)
			}
			dep := the[haDeployment](t, docs, "Deployment")
			if dep.Spec.Replicas == nil || *dep.Spec.Replicas != tt.replicas {
				t.Errorf("replicas %v, want %d", dep.Spec.Replicas, tt.replicas)
			}
			if s := dep.Spec.Strategy; s.Type != "RollingUpdate" || s.RollingUpdate.MaxUnavailable != 0 || s.RollingUpdate.MaxSurge != 1 {
				t.Errorf("strategy %+v, want RollingUpdate with maxSurge 1, maxUnavailable 0", s)
			}
			var dsn []string
			for _, e := range dep.Spec.Template.Spec.Containers[0].Env {
				if e.Name == "BYOB_STATE_POSTGRES_DSN" {
					dsn = append(dsn, e.ValueFrom.SecretKeyRef.Name+"/"+e.ValueFrom.SecretKeyRef.Key)
				}
			}
			switch {
			case tt.dsnSecret == "" && len(dsn) != 0:
				t.Errorf("BYOB_STATE_POSTGRES_DSN from %v, want it left to the main Secret", dsn)
			case tt.dsnSecret != "" && !slices.Equal(dsn, []string{tt.dsnSecret + "/uri"}):
				t.Errorf("BYOB_STATE_POSTGRES_DSN from %v, want %s/uri", dsn, tt.dsnSecret)
			}
			for _, v := range dep.Spec.Template.Spec.Volumes {
				if v.Name == "state" && v.EmptyDir == nil {
					t.Errorf("state volume %+v, want an emptyDir (the state is in PostgreSQL)", v)
				}
			}
			if tt.replicas > 1 {
				if p := the[pdb](t, docs, "PodDisruptionBudget"); p.Spec.MaxUnavailable != 1 || p.Spec.Selector == nil {
					t.Errorf("PodDisruptionBudget %+v, want maxUnavailable 1 with the pods' selector", p.Spec)
				}
			}
		})
	}
}

func TestHelmTemplateRefusesReplicas(t *testing.T) {
	tests := []struct {
		name, values, want string
	}{
		{"two replicas on bbolt", "replicas: 2\n", "replicas: 2 needs the PostgreSQL state"},
		{"a DSN written in the config", strings.Replace(pgConfig, "${BYOB_STATE_POSTGRES_DSN}", "postgres://u:pw@db/byob", 1) + "replicas: 2\npostgres: {dsnSecret: {name: pg}}\n", "holds a password"},
		{"no Secret for the DSN", pgConfig + "replicas: 2\n", "needs its DSN from a Secret"},
		{"zero replicas", "replicas: 0\n", "replicas"},
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
