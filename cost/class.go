package cost

// Class is a path class: how far apart two nodes sit in the cloud, which is
// what cloud data-transfer bills are keyed on. Classes are ordered from the
// cheapest (same-subnet) to the most expensive (internet).
type Class string

// The path classes, cheapest first.
const (
	// ClassSameSubnet: same provider, region, VPC, zone and subnet.
	ClassSameSubnet Class = "same-subnet"
	// ClassSameZone: same VPC and availability zone, different subnet.
	ClassSameZone Class = "same-zone"
	// ClassCrossZone: same VPC, different availability zone.
	ClassCrossZone Class = "cross-zone"
	// ClassCrossVPC: same provider and region, different VPC.
	ClassCrossVPC Class = "cross-vpc"
	// ClassCrossRegion: same provider, different region.
	ClassCrossRegion Class = "cross-region"
	// ClassInternet: different providers, or not enough is known to say more.
	ClassInternet Class = "internet"
)

// Classes lists every class, cheapest first.
func Classes() []Class {
	return []Class{ClassSameSubnet, ClassSameZone, ClassCrossZone, ClassCrossVPC, ClassCrossRegion, ClassInternet}
}

// rank orders the classes; an unknown class ranks as internet.
func (c Class) rank() int {
	switch c {
	case ClassSameSubnet:
		return 0
	case ClassSameZone:
		return 1
	case ClassCrossZone:
		return 2
	case ClassCrossVPC:
		return 3
	case ClassCrossRegion:
		return 4
	default:
		return 5
	}
}

// Valid reports whether c is one of the known classes.
func (c Class) Valid() bool {
	for _, k := range Classes() {
		if c == k {
			return true
		}
	}
	return false
}

// PublicClass is the class whose price applies when traffic of class c goes
// over the nodes' public addresses instead of their private ones. Public-IP
// traffic never gets the in-VPC rates: within a region the providers bill it
// like traffic between VPCs (AWS: $0.01/GB each way for public IPv4 in the
// same region), so every class cheaper than cross-vpc is raised to cross-vpc;
// cross-region and internet stay as they are.
func (c Class) PublicClass() Class {
	if c.rank() < ClassCrossVPC.rank() {
		return ClassCrossVPC
	}
	if !c.Valid() {
		return ClassInternet
	}
	return c
}
