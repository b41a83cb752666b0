package operator

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/cloud-barista/cbnode/api"
	"github.com/cloud-barista/cbnode/overlay"
)

// ControlResponse is cb-network's ControlResponse plus what was signed.
type ControlResponse struct {
	IsSucceeded bool   `json:"isSucceeded"`
	Message     string `json:"message"`
	CommandType string `json:"commandType"`
	DataPlane   string `json:"dataPlane"`
	Version     uint64 `json:"version"`
	Members     int    `json:"members"`
}

// control is GET (cb-network) and POST /v1/control/cladnet/{id}/command/
// {commandType}: UP and DOWN sign a control document and spread it.
func (o *Operator) control(w http.ResponseWriter, r *http.Request) {
	cmd := strings.ToUpper(r.PathValue("commandType"))
	var plane string
	switch cmd {
	case "UP":
		plane = overlay.DataPlaneUp
	case "DOWN":
		plane = overlay.DataPlaneDown
	case "ENABLE_ENCRYPTION", "DISABLE_ENCRYPTION":
		fail(w, badInput(fmt.Errorf("%s: encryption is always on (every libp2p stream is end-to-end encrypted and authenticated); nothing to enable or disable", cmd)))
		return
	default:
		fail(w, badInput(fmt.Errorf("unknown commandType %q: valid types are UP, DOWN (ENABLE_ENCRYPTION and DISABLE_ENCRYPTION answer that encryption is always on)", r.PathValue("commandType"))))
		return
	}
	s, err := o.swarmOf(r.PathValue("cladnetId"))
	if err != nil {
		fail(w, err)
		return
	}
	doc := &overlay.ControlDoc{CladnetID: s.owner.Spec.ID, Version: s.control.NextVersion(time.Now()), DataPlane: plane}
	if err := overlay.SignControl(s.owner.Key, doc); err != nil {
		fail(w, err)
		return
	}
	msg := "The command successfully transferred."
	if applied, err := s.control.Submit(r.Context(), doc); err != nil {
		if applied == nil {
			fail(w, fmt.Errorf("command %s not spread: %v: %w", cmd, err, api.ErrConflict))
			return
		}
		msg = "The command was signed, but the gossip failed: members get it when they next join the topic (" + err.Error() + ")"
	}
	o.log.Info("control command", "cladnet", s.owner.Spec.Name, "command", cmd, "version", doc.Version)
	api.WriteJSON(w, http.StatusOK, ControlResponse{IsSucceeded: true, Message: msg, CommandType: cmd, DataPlane: plane, Version: doc.Version, Members: len(s.peers())})
}
