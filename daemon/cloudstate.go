package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"

	"github.com/cloud-barista/cbnode/cost"
	"github.com/cloud-barista/cbnode/internal/atomicfile"
)

// cloudFile keeps the cloud information set at run time (set-details, PUT
// .../details) across restarts.
const cloudFile = "cloud.json"

// savedCloud is what set-details changed, and the join flags it changed.
type savedCloud struct {
	// Flags is the cloud information the join flags gave when Current was
	// set; Current is what the node announced after set-details.
	Flags   cost.CloudInfo `json:"flags"`
	Current cost.CloudInfo `json:"current"`
}

// startCloud is the cloud information a member starts with: the run-time
// details it saved, unless the join flags changed since (then the flags,
// which the operator just gave, win).
func startCloud(stateDir string, flags cost.CloudInfo, log *slog.Logger) cost.CloudInfo {
	b, err := os.ReadFile(filepath.Join(stateDir, cloudFile))
	if errors.Is(err, fs.ErrNotExist) {
		return flags
	}
	var s savedCloud
	if err == nil {
		err = json.Unmarshal(b, &s)
	}
	if err == nil {
		err = s.Current.Validate()
	}
	if err != nil {
		log.Warn("ignoring saved cloud details", "file", filepath.Join(stateDir, cloudFile), "err", err)
		return flags
	}
	flags.Normalize()
	if !reflect.DeepEqual(normalized(s.Flags), normalized(flags)) {
		log.Info("cloud details from the join flags replace those set at run time", "file", filepath.Join(stateDir, cloudFile))
		return flags
	}
	return s.Current
}

func normalized(c cost.CloudInfo) cost.CloudInfo {
	c.Normalize()
	if len(c.PrivateIPs) == 0 {
		c.PrivateIPs = nil
	}
	return c
}

// saveCloud records details set at run time.
func saveCloud(stateDir string, flags, current cost.CloudInfo) error {
	b, err := json.MarshalIndent(savedCloud{Flags: flags, Current: current}, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(stateDir, cloudFile), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("save cloud details: %w", err)
	}
	return nil
}
