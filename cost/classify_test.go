package cost

import (
	"strings"
	"testing"
)

// at builds a placement with a private and a public IP.
func at(provider, region, vpc, zone, subnet string) CloudInfo {
	return CloudInfo{
		ProviderName: provider, RegionID: region, VirtualNetworkID: vpc,
		AvailabilityZoneID: zone, SubnetID: subnet,
		PrivateIPs: []string{"10.0.0.2"}, PublicIP: "203.0.113.2",
	}
}

func TestClassify(t *testing.T) {
	awsA := at("aws", "us-east-1", "vpc-1", "use1-az1", "subnet-1")
	tests := []struct {
		name   string
		a, b   CloudInfo
		want   Class
		reason string // substring of the reason
	}{
		{"nothing known", CloudInfo{}, CloudInfo{}, ClassInternet, "both nodes' provider unknown"},
		{"own provider unknown", at("", "us-east-1", "vpc-1", "use1-az1", "subnet-1"), awsA, ClassInternet, "this node's provider unknown"},
		{"peer provider unknown", awsA, at("", "us-east-1", "vpc-1", "use1-az1", "subnet-1"), ClassInternet, "peer's provider unknown"},
		{"aws to gcp", awsA, at("gcp", "us-east1", "net-1", "us-east1-b", "sub-1"), ClassInternet, "different providers (aws, gcp)"},
		{"azure to alibaba", at("azure", "eastus", "vnet-1", "1", "s-1"), at("alibaba", "us-east-1", "vpc-1", "us-east-1a", "vsw-1"), ClassInternet, "different providers"},
		{"provider case and spaces", awsA, at(" AWS ", "us-east-1", "vpc-1", "use1-az1", "subnet-1"), ClassSameSubnet, "same subnet subnet-1"},

		{"aws cross-region", awsA, at("aws", "eu-west-1", "vpc-2", "euw1-az1", "subnet-9"), ClassCrossRegion, "same provider aws, different regions (us-east-1, eu-west-1)"},
		{"aws region unknown", awsA, at("aws", "", "vpc-1", "use1-az1", "subnet-1"), ClassCrossRegion, "peer's region unknown"},
		{"aws cross-vpc", awsA, at("aws", "us-east-1", "vpc-2", "use1-az1", "subnet-2"), ClassCrossVPC, "different VPCs (vpc-1, vpc-2)"},
		{"aws vpc unknown", awsA, at("aws", "us-east-1", "", "use1-az1", "subnet-1"), ClassCrossVPC, "peer's VPC unknown"},
		{"aws own vpc unknown", at("aws", "us-east-1", "", "use1-az1", "subnet-1"), awsA, ClassCrossVPC, "this node's VPC unknown"},
		{"aws cross-zone", awsA, at("aws", "us-east-1", "vpc-1", "use1-az2", "subnet-2"), ClassCrossZone, "different availability zones"},
		{"aws zone unknown", awsA, at("aws", "us-east-1", "vpc-1", "", "subnet-1"), ClassCrossZone, "peer's availability zone unknown"},
		{"aws same zone other subnet", awsA, at("aws", "us-east-1", "vpc-1", "use1-az1", "subnet-2"), ClassSameZone, "different subnets"},
		{"aws subnet unknown", awsA, at("aws", "us-east-1", "vpc-1", "use1-az1", ""), ClassSameZone, "peer's subnet unknown"},
		{"aws same subnet", awsA, awsA, ClassSameSubnet, "same subnet"},

		{"gcp same global vpc, other region", at("gcp", "us-east1", "net-1", "us-east1-b", "sub-e"), at("gcp", "europe-west1", "net-1", "europe-west1-b", "sub-w"), ClassCrossRegion, "different regions"},
		{"gcp cross-zone", at("gcp", "us-east1", "net-1", "us-east1-b", "sub-e"), at("gcp", "us-east1", "net-1", "us-east1-c", "sub-e"), ClassCrossZone, "different availability zones"},
		{"gcp same zone", at("gcp", "us-east1", "net-1", "us-east1-b", "sub-e"), at("gcp", "us-east1", "net-1", "us-east1-b", "sub-e"), ClassSameSubnet, "same subnet"},
		{"gcp other network", at("gcp", "us-east1", "net-1", "us-east1-b", "sub-e"), at("gcp", "us-east1", "net-2", "us-east1-b", "sub-x"), ClassCrossVPC, "different VPCs"},

		{"azure same zone", at("azure", "eastus", "vnet-1", "1", "s-1"), at("azure", "eastus", "vnet-1", "1", "s-1"), ClassSameSubnet, "same subnet"},
		{"azure same zone other subnet", at("azure", "eastus", "vnet-1", "1", "s-1"), at("azure", "eastus", "vnet-1", "1", "s-2"), ClassSameZone, "different subnets"},
		{"azure cross-zone", at("azure", "eastus", "vnet-1", "1", "s-1"), at("azure", "eastus", "vnet-1", "2", "s-1"), ClassCrossZone, "different availability zones"},
		{"azure cross-vnet", at("azure", "eastus", "vnet-1", "1", "s-1"), at("azure", "eastus", "vnet-2", "1", "s-1"), ClassCrossVPC, "different VPCs"},
		{"azure cross-region", at("azure", "eastus", "vnet-1", "1", "s-1"), at("azure", "westus", "vnet-3", "1", "s-1"), ClassCrossRegion, "different regions"},

		{"alibaba same vpc other zone", at("alibaba", "us-east-1", "vpc-a", "us-east-1a", "vsw-1"), at("alibaba", "us-east-1", "vpc-a", "us-east-1b", "vsw-2"), ClassCrossZone, "different availability zones"},
		{"alibaba same vswitch", at("alibaba", "us-east-1", "vpc-a", "us-east-1a", "vsw-1"), at("alibaba", "us-east-1", "vpc-a", "us-east-1a", "vsw-1"), ClassSameSubnet, "same subnet"},
		{"alibaba zone unknown", at("alibaba", "us-east-1", "vpc-a", "", ""), at("alibaba", "us-east-1", "vpc-a", "", ""), ClassCrossZone, "both nodes' availability zone unknown"},

		{"unknown provider same subnet", at("openstack", "r1", "net", "nova", "sub"), at("openstack", "r1", "net", "nova", "sub"), ClassSameSubnet, "same subnet"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, why := Classify(tc.a, tc.b)
			if got != tc.want || !strings.Contains(why, tc.reason) {
				t.Errorf("Classify = %s (%q), want %s (containing %q)", got, why, tc.want, tc.reason)
			}
			if back, _ := Classify(tc.b, tc.a); back != got {
				t.Errorf("not symmetric: reverse gives %s", back)
			}
		})
	}
}

func TestPrivateReachable(t *testing.T) {
	tests := []struct {
		name   string
		a, b   CloudInfo
		want   bool
		reason string
	}{
		{"aws other subnet, same vpc", at("aws", "us-east-1", "vpc-1", "use1-az1", "subnet-1"), at("aws", "us-east-1", "vpc-1", "use1-az2", "subnet-2"), true, "same aws VPC vpc-1"},
		{"aws other vpc", at("aws", "us-east-1", "vpc-1", "a", "s"), at("aws", "us-east-1", "vpc-2", "a", "s"), false, "different VPCs"},
		{"aws region unknown", at("aws", "", "vpc-1", "a", "s"), at("aws", "us-east-1", "vpc-1", "a", "s"), false, "region unknown"},
		{"aws regions differ", at("aws", "us-west-2", "vpc-1", "a", "s"), at("aws", "us-east-1", "vpc-1", "a", "s"), false, "regional"},
		{"gcp global vpc across regions", at("gcp", "us-east1", "net-1", "b", "s"), at("gcp", "asia-east1", "net-1", "a", "t"), true, "global gcp VPC"},
		{"gcp region unknown", at("gcp", "", "net-1", "b", "s"), at("gcp", "asia-east1", "net-1", "a", "t"), true, "global"},
		{"azure regional vnet", at("azure", "eastus", "vnet", "1", "s"), at("azure", "westus", "vnet", "1", "s"), false, "regional"},
		{"alibaba same vpc", at("alibaba", "cn-hangzhou", "vpc-a", "h", "v1"), at("alibaba", "cn-hangzhou", "vpc-a", "i", "v2"), true, "same alibaba VPC"},
		{"vpc unknown", at("aws", "us-east-1", "", "a", "s"), at("aws", "us-east-1", "vpc-1", "a", "s"), false, "VPC unknown"},
		{"providers differ", at("aws", "r", "vpc-1", "a", "s"), at("gcp", "r", "vpc-1", "a", "s"), false, "different providers"},
		{"provider unknown", at("", "r", "vpc-1", "a", "s"), at("", "r", "vpc-1", "a", "s"), false, "provider unknown"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, why := PrivateReachable(tc.a, tc.b)
			if got != tc.want || !strings.Contains(why, tc.reason) {
				t.Errorf("PrivateReachable = %v (%q), want %v (containing %q)", got, why, tc.want, tc.reason)
			}
		})
	}
}

func TestPublicClass(t *testing.T) {
	want := map[Class]Class{
		ClassSameSubnet:  ClassCrossVPC,
		ClassSameZone:    ClassCrossVPC,
		ClassCrossZone:   ClassCrossVPC,
		ClassCrossVPC:    ClassCrossVPC,
		ClassCrossRegion: ClassCrossRegion,
		ClassInternet:    ClassInternet,
		Class("bogus"):   ClassInternet,
	}
	for c, w := range want {
		if got := c.PublicClass(); got != w {
			t.Errorf("%s.PublicClass() = %s, want %s", c, got, w)
		}
	}
}
