package policy

import (
	"strings"
	"testing"
)

func TestEdits(t *testing.T) {
	b := mustParse(t, validBundle)
	if err := b.DeleteWitness("release"); err == nil || !strings.Contains(err.Error(), "used by security policies prod, anywhere") {
		t.Errorf("DeleteWitness(release) = %v; want a refusal naming prod, anywhere", err)
	}
	if err := b.DeleteWitness("nobody"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("DeleteWitness(nobody) = %v", err)
	}
	if err := b.AddWitness(&Witness{Name: "qa", Keys: b.Witness("qa").Keys}); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("AddWitness(qa) = %v", err)
	}
	if err := b.AddWitness(&Witness{Name: "qa2", Keys: b.Witness("qa").Keys}); err == nil || !strings.Contains(err.Error(), `already a key of witness "qa"`) {
		t.Errorf("AddWitness(qa2 with qa's key) = %v", err)
	}
	if err := b.AddPolicy(&SecurityPolicy{Name: "p", Witnesses: []string{"ghost"}}); err == nil || !strings.Contains(err.Error(), `witness "ghost" does not exist`) {
		t.Errorf("AddPolicy(ghost) = %v", err)
	}
	if err := b.DeletePolicy("anywhere"); err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteWitness("legacy"); err != nil {
		t.Errorf("DeleteWitness(legacy) after its only policy went = %v", err)
	}
	b.Touch()
	out, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	b2, err := ParseBundle("edited", out)
	if err != nil {
		t.Fatalf("edited bundle does not parse: %v", err)
	}
	if b2.Serial != 8 || b2.Witness("legacy") != nil || b2.Policy("anywhere") != nil {
		t.Errorf("edited bundle = serial %d, legacy %v, anywhere %v", b2.Serial, b2.Witness("legacy"), b2.Policy("anywhere"))
	}
}
