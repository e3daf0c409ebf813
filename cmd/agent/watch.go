package main

import (
	"os"
	"time"

	"github.com/byob-agent/byob-agent/config"
	"github.com/byob-agent/byob-agent/internal/filewatch"
)

// reloadStatus is the outcome of the last load of the configuration, for the metrics and the status page.
type reloadStatus struct {
	At      time.Time
	Trigger string // start, sighup or file
	Err     error  // nil when it was applied; else the running configuration was kept
}

// loadWatched loads the configuration and tells which files it read (the config file, the teams file,
// secret files), with what they held, for the watcher.
func loadWatched(path string) (*config.Config, filewatch.Files, error) {
	rec := filewatch.NewRecorder(os.ReadFile)
	cfg, err := loadConfigReading(path, rec.ReadFile)
	return cfg, rec.Files(), err
}

// watch starts watching the files a load read. Without inotify (its limits reached) the daemon runs on
// and reloads on SIGHUP only.
func (d *daemon) watch(files filewatch.Files) {
	w, err := filewatch.New(filewatch.Options{Logger: d.log})
	if err != nil {
		d.log.Warn("configuration files are not watched: send SIGHUP after changing them", "error", err)
		return
	}
	d.watcher = w
	w.Set(files)
}

// fileChanges receives when a watched file changed; never without a watcher.
func (d *daemon) fileChanges() <-chan struct{} {
	if d.watcher == nil {
		return nil
	}
	return d.watcher.Changes()
}

func (d *daemon) stopWatching() {
	if d.watcher != nil {
		d.watcher.Close()
	}
}

// loaded records the outcome of a load in the metrics and for lastReload.
func (d *daemon) loaded(trigger string, err error) {
	s := &reloadStatus{At: time.Now(), Trigger: trigger, Err: err}
	d.lastLoad.Store(s)
	result, ok := "ok", 1.0
	if err != nil {
		result, ok = "error", 0
	}
	if trigger != "start" {
		d.metrics.ConfigReloads.WithLabelValues(trigger, result).Inc()
	}
	d.metrics.ConfigLastReloadOK.Set(ok)
	d.metrics.ConfigLastReloadTime.Set(float64(s.At.UnixNano()) / 1e9)
}

// lastReload is the outcome of the last load of the configuration, at start or a reload.
func (d *daemon) lastReload() reloadStatus {
	if s := d.lastLoad.Load(); s != nil {
		return *s
	}
	return reloadStatus{}
}
