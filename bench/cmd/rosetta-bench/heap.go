package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// heapEvery is how often a Rosetta process's heap profile is taken while it
// runs (-pprof DIR -pprof-heap-every 15s): a CPU profile says where time
// went, but the peak RSS of a long run (the 1M-row transaction) needs the
// heap at several points to say what held it.
var heapEvery = flag.Duration("pprof-heap-every", 0, "with -pprof, also save a heap profile of each Rosetta process this often (0: none)")

// sampleHeap saves /debug/pprof/heap every heapEvery into
// dir/<run>-<command>-heap-<seconds>s.pprof until the process exits, and
// logs each sample's RSS, Go heap in use and collector figures, so a
// profile can be matched to the RSS peak.
func (r *rosettaRun) sampleHeap(dir string) {
	if r.metrics == "" || dir == "" || *heapEvery <= 0 {
		return
	}
	go func() {
		t := time.NewTicker(*heapEvery)
		defer t.Stop()
		for {
			select {
			case <-r.done:
				return
			case <-t.C:
			}
			secs := int(time.Since(r.started).Seconds())
			base := filepath.Join(dir, fmt.Sprintf("%s-%s-heap-%04ds", r.name, r.command, secs))
			if err := fetchTo(fmt.Sprintf("http://%s/debug/pprof/heap", r.metrics), base+".pprof"); err != nil {
				continue
			}
			stats, _ := memStats(r.metrics)
			logf("heap %s %ds: VmRSS %s, %s", r.name, secs, vmRSS(r.cmd.Process.Pid), stats)
		}
	}()
}

func fetchTo(url, path string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	return err
}

// memStats reads the runtime.MemStats lines the debug=1 heap profile ends
// with: the figures that say whether the collector is fighting the soft
// memory limit.
func memStats(addr string) (string, error) {
	resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/heap?debug=1", addr))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	want := map[string]bool{"HeapInuse": true, "HeapAlloc": true, "Sys": true, "NumGC": true, "GCCPUFraction": true, "NextGC": true}
	var out []string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(strings.TrimPrefix(sc.Text(), "# "), " = ")
		if ok && want[name] {
			out = append(out, name+" "+val)
		}
	}
	return strings.Join(out, ", "), sc.Err()
}

func vmRSS(pid int) string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "?"
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}
