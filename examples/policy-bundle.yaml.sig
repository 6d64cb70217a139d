{
  "apiVersion": "nri-csig.io/v1alpha1",
  "kind": "BundleSignature",
  "algorithm": "RSA_PKCS1_SHA_256",
  "keyFingerprint": "sha256:ea6109ea117a2b7a99d719382bb75e2ef8b02901a8c114f4ee3f1d6a6adcf190",
  "bundleDigest": "sha256:8e507137169fe61b289682e2a70c9836775d73ad0d3d2cde1101b26ac80b9583",
  "signature": "WCxgM1wi5BBK4TlWqBQaQLK6xMG00qGAy4S+771J2S30PRxKcSLttL/kWfKBYQRr8GXk6ptssiVg4ME+sUmBRSWfp0NdHaXwH5xihURCzttZNqYlcNie28AGfsnRB4fnmd7mFTBZ8n88Gea59+ofC+h1A4vVPpzo4sNtGTDU+rSsZnqXd3n5N0rMe+qq/P1Dx8DKo2OSSBekLtbEjtJzVAQC5hx/CUQ9CBCPTzSgKzJ6IYG4gwpRapUaGMy0VcPSoLHo3vOSH6Bp6hXnvzT/5GZWkdOWOz4mFLfBtT8GoMy90ysoOXGl3jk+0qqPzRNrzeiWEokvyT5++5s+Bc5URQ=="
}
