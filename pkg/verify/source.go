package verify

import (
	"strings"
	"unique"

	"github.com/nri-csig/nri-csig/pkg/signature"
)

// source is where a check's signature was found (signature.Manifest.Source),
// held in the 16 bytes of one string header for the store's sake: nearly
// every signature of the node is a cosign .sig tag, "<repository>:sha256-<hex>.sig",
// whose tag the image digest gives back and whose repository many images
// share. Such a source keeps only its repository, interned (no bytes of its
// own per check); any other (a referrer, a signature directory, a failure)
// keeps its text.
//
// The encoding is exact and canonical for a given digest: a text is held
// in the short form whenever it has that shape, so two sources of the same
// digest are equal exactly when their texts are, and text gives back the
// text byte for byte. A source means nothing without the digest it was made
// for: the store's entries are keyed by it.
//
//   - "\x01" + repository: repository + ":" + signature.SignatureTag(digest);
//   - "\x00" + text: a text that begins with "\x00" or "\x01" (none does in
//     practice: the byte keeps the encoding one-to-one);
//   - text: any other text, as is.
type source struct{ enc string }

const (
	srcLiteral = '\x00'
	srcSigTag  = '\x01'
)

// sourceOf encodes text, found for digest.
func sourceOf(digest, text string) source {
	if repo, ok := strings.CutSuffix(text, ":"+signature.SignatureTag(digest)); ok {
		// unique clones repo, so the manifest's text is not kept alive by it.
		return source{unique.Make(string(srcSigTag) + repo).Value()}
	}
	if text != "" && (text[0] == srcLiteral || text[0] == srcSigTag) {
		return source{string(srcLiteral) + text}
	}
	return source{text}
}

// text is the source's text, s being of digest.
func (s source) text(digest string) string {
	if s.enc == "" {
		return ""
	}
	switch s.enc[0] {
	case srcSigTag:
		return s.enc[1:] + ":" + signature.SignatureTag(digest)
	case srcLiteral:
		return s.enc[1:]
	}
	return s.enc
}

// cloneIn returns s in fresh memory, its text in a, but for a shared
// repository (see Store.Compact).
func (s source) cloneIn(a *arena) source {
	if s.enc != "" && s.enc[0] == srcSigTag {
		return s.clone()
	}
	return source{a.str(s.enc)}
}

// clone returns s in fresh memory, but for a shared repository.
func (s source) clone() source {
	if s.enc != "" && s.enc[0] == srcSigTag {
		return source{unique.Make(s.enc).Value()}
	}
	return source{strings.Clone(s.enc)}
}
