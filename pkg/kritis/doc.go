// Package kritis maps the objects of kritis-validation-hook (the admission
// webhook behind Alibaba Cloud Security Center's container signature feature,
// group kritis.grafeas.io/v1beta1) to an nri-csig policy bundle:
//
//   - AttestationAuthority (spec.publicKeyData, the base64 public key PEM;
//     spec.publicKeyId, the KMS key id; spec.noteReference) -> Witness;
//   - GenericAttestationPolicy (namespaced; every spec.attestationAuthorityNames
//     entry must have signed) -> SecurityPolicy for that namespace, N-of-N;
//   - AdmissionAllowlist name patterns -> nothing: a pattern names images by
//     name, nri-csig trusts digests only. Each one is reported; with the digests
//     that run today they become expiring Exemptions.
//
// It reads what `kubectl get ... -o yaml` prints and never talks to a cluster,
// a registry or KMS: the plan it returns is pure data for the CLI to print and
// write.
package kritis
