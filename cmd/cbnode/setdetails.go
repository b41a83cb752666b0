package main

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/urfave/cli/v2"

	"github.com/cloud-barista/cbnode/api"
	"github.com/cloud-barista/cbnode/cost"
	"github.com/cloud-barista/cbnode/operator"
)

// setDetailsOperatorFlags make 'cbnode set-details --host H' go through the
// operator.
func setDetailsOperatorFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "host", Usage: "set the details of this member (host name, peer ID or overlay IP) through the operator"},
		&cli.StringFlag{Name: "cladnet", Usage: "with --host: the CLADNet (name or ID; default: the operator's only one)"},
		operatorURLFlag, operatorAuthFlag,
	}
}

// setDetailsViaOperator sends PUT .../peer/{host}/details to the operator.
func setDetailsViaOperator(c *cli.Context, patch cost.CloudPatch) error {
	cl, err := operatorClient(c)
	if err != nil {
		return err
	}
	cn := c.String("cladnet")
	if cn == "" {
		var list operator.CLADNetSpecifications
		if err := opDo(cl, c.Context, http.MethodGet, "/v1/cladnet", nil, &list); err != nil {
			return err
		}
		if len(list.CLADNetSpecifications) != 1 {
			return withCode(exitUsage, fmt.Errorf("set-details --host: the operator holds %d CLADNets: name one with --cladnet", len(list.CLADNetSpecifications)))
		}
		cn = list.CLADNetSpecifications[0].Name
	}
	host := c.String("host")
	if host == "" {
		return withCode(exitUsage, errors.New("set-details: --host needs a member's host name, peer ID or overlay IP"))
	}
	var out api.Peer
	body := operator.DetailsRequest{CloudInformation: &patch}
	path := "/v1/cladnet/" + url.PathEscape(cn) + "/peer/" + url.PathEscape(host) + "/details"
	if err := opDo(cl, c.Context, http.MethodPut, path, body, &out); err != nil {
		return err
	}
	return printJSON(out.Details)
}
