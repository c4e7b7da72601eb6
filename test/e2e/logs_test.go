package e2e

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// TestManagerLogs checks that the operator, at the default log level,
// writes every line as a JSON record, controller-runtime's own included.
func TestManagerLogs(t *testing.T) {
	f, err := os.Open(filepath.Join(workDir, "manager.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	started := false
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var rec struct {
			Level, Msg string
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil || rec.Level == "" || rec.Msg == "" {
			t.Errorf("not a JSON log record: %s", sc.Bytes())
			continue
		}
		if rec.Msg == "Starting Controller" && rec.Level == "INFO" {
			started = true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if !started {
		t.Error(`the manager logged no "Starting Controller" at INFO`)
	}
}
