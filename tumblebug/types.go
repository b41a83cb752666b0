package tumblebug

// The shapes of Tumblebug's REST API that cbnode uses, with their JSON
// names as in Tumblebug v0.13.0's src/interface/rest/docs/swagger.yaml
// (the same since v0.12.6, when "mci"/"vm" became "infra"/"node"). Fields
// cbnode does not read are left out; Tumblebug sends many more.

// SimpleMsg is Tumblebug's error body (model.SimpleMsg): 400, 404 and 500
// answers, and echo's 401 ({"message":"Unauthorized"}).
type SimpleMsg struct {
	Message string `json:"message"`
}

// Readyz is GET /tumblebug/readyz (model.ReadyzResponse; 200 or 503). It
// needs no credentials.
type Readyz struct {
	Ready       bool   `json:"ready"`
	Initialized bool   `json:"initialized"`
	Message     string `json:"message"`
}

// Infra is GET /ns/{nsId}/infra/{infraId} (model.InfraInfo).
type Infra struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Status string `json:"status"`
	Node   []Node `json:"node"`
}

// Node is one VM of an Infra (model.NodeInfo).
type Node struct {
	ID               string     `json:"id"`
	Name             string     `json:"name"`
	Status           string     `json:"status"` // "Running", ...
	NodeGroupID      string     `json:"nodeGroupId"`
	ConnectionName   string     `json:"connectionName"`
	ConnectionConfig ConnConfig `json:"connectionConfig"`
	Region           RegionInfo `json:"region"`
	VNetID           string     `json:"vNetId"` // Tumblebug's vNet ID (GET .../resources/vNet/{vNetId})
	SubnetID         string     `json:"subnetId"`
	CspVNetID        string     `json:"cspVNetId"` // the cloud's own VPC ID
	CspSubnetID      string     `json:"cspSubnetId"`
	SecurityGroupIDs []string   `json:"securityGroupIds"`
	PublicIP         string     `json:"publicIP"`
	PrivateIP        string     `json:"privateIP"`
	SSHPort          int        `json:"sshPort"`
	NodeUserName     string     `json:"nodeUserName"`
	Image            Image      `json:"image"`
}

// Image is the summary of a node's image (model.ImageSummary).
type Image struct {
	OSArchitecture string `json:"osArchitecture"` // x86_64, arm64, ... ("" or NA: unknown)
	OSDistribution string `json:"osDistribution"`
}

// ConnConfig is a node's connection (model.ConnConfig).
type ConnConfig struct {
	ConfigName   string `json:"configName"`
	ProviderName string `json:"providerName"`
}

// RegionInfo is a node's region and zone (model.RegionInfo).
type RegionInfo struct {
	Region string `json:"region"`
	Zone   string `json:"zone,omitempty"`
}

// VNet is GET /ns/{nsId}/resources/vNet/{vNetId} (model.VNetInfo).
type VNet struct {
	ID             string   `json:"id"`
	CspResourceID  string   `json:"cspResourceId"`
	CidrBlock      string   `json:"cidrBlock"`
	SubnetInfoList []Subnet `json:"subnetInfoList"`
}

// Subnet is one of a vNet's subnets (model.SubnetInfo).
type Subnet struct {
	ID            string `json:"id"`
	CspResourceID string `json:"cspResourceId"`
	IPv4CIDR      string `json:"ipv4_CIDR"`
	Zone          string `json:"zone"`
}

// SecurityGroup is GET /ns/{nsId}/resources/securityGroup/{securityGroupId}
// (model.SecurityGroupInfo).
type SecurityGroup struct {
	ID            string         `json:"id"`
	VNetID        string         `json:"vNetId"`
	FirewallRules []FirewallRule `json:"firewallRules"`
}

// FirewallRule is a rule in force (model.FirewallRuleInfo; Tumblebug spells
// these keys with a capital letter).
type FirewallRule struct {
	Port      string `json:"Port"` // "22", "1-65535"
	Protocol  string `json:"Protocol"`
	Direction string `json:"Direction"` // inbound, outbound
	CIDR      string `json:"CIDR"`
}

// FirewallRuleReq is a rule to add (model.FirewallRuleReq).
type FirewallRuleReq struct {
	Ports     string `json:"Ports"` // "7460", "22,900-1000"
	Protocol  string `json:"Protocol"`
	Direction string `json:"Direction"`
	CIDR      string `json:"CIDR"`
}

// SecurityGroupUpdateReq is the body of POST
// /ns/{nsId}/resources/securityGroup/{securityGroupId}/rules (only
// firewallRules is read; identical rules are skipped by Tumblebug).
type SecurityGroupUpdateReq struct {
	FirewallRules []FirewallRuleReq `json:"firewallRules"`
}

// SecurityGroupUpdateResponse is its answer.
type SecurityGroupUpdateResponse struct {
	ID       string         `json:"id"`
	Name     string         `json:"name"`
	Success  bool           `json:"success"`
	Message  string         `json:"message"`
	Updated  SecurityGroup  `json:"updated"`
	Previous *SecurityGroup `json:"previous,omitempty"`
}

// CmdReq is the body of POST /ns/{nsId}/cmd/infra/{infraId}
// (model.InfraCmdReq).
type CmdReq struct {
	Command        []string `json:"command"`
	UserName       string   `json:"userName,omitempty"`
	TimeoutMinutes int      `json:"timeoutMinutes,omitempty"`
}

// CmdResult is one node's result (model.SshCmdResultForAPI): the maps are
// keyed by the command's index ("0", "1", ... in JSON).
type CmdResult struct {
	InfraID string         `json:"infraId"`
	NodeID  string         `json:"nodeId"`
	NodeIP  string         `json:"nodeIp"`
	Command map[int]string `json:"command"`
	Stdout  map[int]string `json:"stdout"`
	Stderr  map[int]string `json:"stderr"`
	Error   string         `json:"error"`
}

// CmdResults is the answer of POST /ns/{nsId}/cmd/infra/{infraId}
// (model.InfraSshCmdResultForAPI).
type CmdResults struct {
	Results []CmdResult `json:"results"`
}

// FileCmdResults is the answer of POST
// /ns/{nsId}/transferFileAndCmd/infra/{infraId}
// (model.InfraFileTransferAndCmdResultForAPI): cmdResults is absent when no
// command was given or no transfer succeeded.
type FileCmdResults struct {
	FileTransferResults CmdResults  `json:"fileTransferResults"`
	CmdResults          *CmdResults `json:"cmdResults,omitempty"`
}
