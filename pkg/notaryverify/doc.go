// Package notaryverify verifies Notary Project (notation) signatures offline,
// with notation-go, against the trust of one witness of kind x509: its CA
// certificates, its optional TSA certificates and its trusted identities.
//
// A witness becomes an in-memory notation trust policy of one statement
// (registry scope "*", level strict, trust stores ca:witness and, with TSA
// certificates, tsa:witness) and an in-memory trust store; each signature
// envelope is then judged with notation-go's verifier directly, with no
// registry and no network: revocation is not checked (the node decides with
// no network on the decision path), neither for the signing chain nor for the
// timestamping chain.
//
// This package is the only one that imports notation-go; keep it out of
// pkg/policy and pkg/verify.
package notaryverify
