package devmode

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// stateFile, in the data directory, records which Topics herald dev created
// and the manifest file that declared each, so that it deletes only those.
const stateFile = "herald-dev-state.json"

// devState is the content of stateFile.
type devState struct {
	Version int `json:"version"`
	// Topics maps "namespace/name" to where the Topic was declared.
	Topics map[string]topicRecord `json:"topics"`
}

type topicRecord struct {
	// File is the absolute path of the manifest that declared the Topic.
	File string `json:"file"`
}

func loadState(dir string) (*devState, error) {
	st := &devState{Version: 1, Topics: map[string]topicRecord{}}
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("%s: %w", stateFile, err)
	}
	if st.Topics == nil {
		st.Topics = map[string]topicRecord{}
	}
	return st, nil
}

// save writes the state atomically.
func (s *devState) save(dir string) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, stateFile+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, stateFile))
}
