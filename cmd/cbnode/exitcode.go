package main

import (
	"errors"
	"net/http"

	"github.com/cloud-barista/cbnode/api"
	"github.com/cloud-barista/cbnode/cladnet"
	"github.com/cloud-barista/cbnode/daemon"
)

// Exit codes: a service manager restarts a node that failed (1) but not
// one whose command line or credentials are wrong (2, 3): see
// RestartPreventExitStatus in examples/cbnode.service.
const (
	exitFailure     = 1 // anything else: the network, the port, a full range, ...
	exitUsage       = 2 // bad flags or arguments
	exitCredential  = 3 // join token missing, garbled, expired, for another CLADNet or peer; CLADNet dissolved
	exitUnreachable = 4 // the node's local API does not answer
	exitNotFound    = 5 // no such member, CLADNet or endpoint
)

const exitCodesHelp = `Exit codes: 0 success, 1 failure, 2 usage error, 3 credential error (join
token missing, garbled, expired or for another node), 4 local API unreachable,
5 not found.`

// codedError carries an exit code.
type codedError struct {
	code int
	err  error
}

func (e *codedError) Error() string { return e.err.Error() }
func (e *codedError) Unwrap() error { return e.err }

// withCode marks err with an exit code (nil stays nil).
func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &codedError{code: code, err: err}
}

// exitCode picks the exit code for err.
func exitCode(err error) int {
	var ce *codedError
	var ue *api.UnreachableError
	var se *api.StatusError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ce):
		return ce.code
	case errors.As(err, &ue):
		return exitUnreachable
	case errors.As(err, &se) && se.Code == http.StatusNotFound, errors.Is(err, cladnet.ErrNotFound):
		return exitNotFound
	case errors.Is(err, cladnet.ErrExpired), errors.Is(err, cladnet.ErrNotYetValid), errors.Is(err, cladnet.ErrWrongPeer),
		errors.Is(err, cladnet.ErrBadSignature), errors.Is(err, cladnet.ErrForeignCladnet),
		errors.Is(err, daemon.ErrDissolved), errors.Is(err, daemon.ErrRevoked): // nothing to restart: the CLADNet is gone
		return exitCredential
	}
	return exitFailure
}
