package cost

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Errors Verify can return; callers may test with errors.Is.
var (
	ErrRulesUnsigned     = errors.New("rules are not signed")
	ErrRulesBadSignature = errors.New("rules signature does not verify against the CLADNet owner key")
	ErrRulesForeign      = errors.New("rules belong to another CLADNet")
)

const rulesDomain = "cbnode-rules-v1\n"

// signedBytes is the canonical byte string the owner signs: a domain tag and
// the JSON of every field but the signature. encoding/json writes struct
// fields in declaration order and map keys sorted, so it is deterministic.
func (r *Rules) signedBytes() ([]byte, error) {
	body := *r
	body.Signature = ""
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("rules: encode for signing: %w", err)
	}
	return append([]byte(rulesDomain), b...), nil
}

// SignRules validates r and signs it with the CLADNet owner key, setting
// r.Signature. A zero IssuedAt is set to the current time; IssuedAt is
// stored in UTC truncated to the second.
func SignRules(owner ed25519.PrivateKey, r *Rules) error {
	if len(owner) != ed25519.PrivateKeySize {
		return fmt.Errorf("sign rules: owner key has %d bytes, want %d", len(owner), ed25519.PrivateKeySize)
	}
	if err := r.Validate(); err != nil {
		return fmt.Errorf("sign rules: %w", err)
	}
	if r.IssuedAt.IsZero() {
		r.IssuedAt = time.Now()
	}
	r.IssuedAt = r.IssuedAt.UTC().Truncate(time.Second)
	msg, err := r.signedBytes()
	if err != nil {
		return fmt.Errorf("sign rules: %w", err)
	}
	r.Signature = base64.StdEncoding.EncodeToString(ed25519.Sign(owner, msg))
	return nil
}

// Verify checks that r belongs to the CLADNet cladnetID, is signed by its
// owner key and is valid. Pass the CLADNet's Spec.ID and
// Spec.OwnerPublicKey().
func (r *Rules) Verify(cladnetID string, owner ed25519.PublicKey) error {
	if r == nil {
		return errors.New("verify rules: no rules")
	}
	if r.CladnetID != cladnetID {
		return fmt.Errorf("%w (%s, not %s)", ErrRulesForeign, r.CladnetID, cladnetID)
	}
	if len(owner) != ed25519.PublicKeySize {
		return fmt.Errorf("verify rules: owner key has %d bytes, want %d", len(owner), ed25519.PublicKeySize)
	}
	if r.Signature == "" {
		return fmt.Errorf("%w (version %d)", ErrRulesUnsigned, r.Version)
	}
	sig, err := base64.StdEncoding.DecodeString(r.Signature)
	if err != nil {
		return fmt.Errorf("%w: signature is not base64: %v", ErrRulesBadSignature, err)
	}
	msg, err := r.signedBytes()
	if err != nil {
		return fmt.Errorf("verify rules: %w", err)
	}
	if !ed25519.Verify(owner, msg, sig) {
		return ErrRulesBadSignature
	}
	if err := r.Validate(); err != nil {
		return fmt.Errorf("verify rules: %w", err)
	}
	return nil
}
