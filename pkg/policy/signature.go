package policy

// SignatureSuffix is appended to a bundle file name to name its detached signature.
const SignatureSuffix = ".sig"
