package cost

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestCloudPatchMergesFieldByField(t *testing.T) {
	base := CloudInfo{ProviderName: "aws", RegionID: "us-east-1", PrivateIPs: []string{"10.0.0.5"}, PublicIP: "3.3.3.3"}
	cases := []struct {
		name string
		body string
		want CloudInfo
	}{
		{"cb-network's five fields keep the addresses",
			`{"providerName":"GCP","regionId":"asia-northeast3","availabilityZoneId":"asia-northeast3-a","virtualNetworkId":"vpc-9","subnetId":"sub-9"}`,
			CloudInfo{ProviderName: "gcp", RegionID: "asia-northeast3", AvailabilityZoneID: "asia-northeast3-a", VirtualNetworkID: "vpc-9", SubnetID: "sub-9", PrivateIPs: []string{"10.0.0.5"}, PublicIP: "3.3.3.3"}},
		{"explicit empty values clear",
			`{"publicIp":"","privateIps":[]}`,
			CloudInfo{ProviderName: "aws", RegionID: "us-east-1"}},
		{"nothing given changes nothing", `{}`, base},
		{"new addresses replace", `{"privateIps":["10.0.0.6","10.0.1.6"]}`,
			CloudInfo{ProviderName: "aws", RegionID: "us-east-1", PrivateIPs: []string{"10.0.0.6", "10.0.1.6"}, PublicIP: "3.3.3.3"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var p CloudPatch
			if err := json.Unmarshal([]byte(tc.body), &p); err != nil {
				t.Fatal(err)
			}
			if got := p.Apply(base); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Apply = %+v, want %+v", got, tc.want)
			}
		})
	}
	if base.PrivateIPs[0] != "10.0.0.5" {
		t.Error("Apply changed its base")
	}
}
