package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestManagerLogs checks that the operator, at the default log level,
// writes every line as a JSON record, controller-runtime's own included.
func TestManagerLogs(t *testing.T) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		data, err := os.ReadFile(filepath.Join(workDir, "manager.log"))
		if err != nil {
			t.Fatal(err)
		}
		// The last line may be partly written.
		if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
			data = data[:i]
		} else {
			data = nil
		}
		started := false
		for _, line := range bytes.Split(data, []byte("\n")) {
			if len(line) == 0 {
				continue
			}
			var rec struct{ Level, Msg string }
			if err := json.Unmarshal(line, &rec); err != nil || rec.Level == "" || rec.Msg == "" {
				t.Fatalf("not a JSON log record: %s", line)
			}
			if rec.Msg == "Starting Controller" && rec.Level == "INFO" {
				started = true
			}
		}
		if started {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf(`the manager logged no "Starting Controller" at INFO:\n%s`, data)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
