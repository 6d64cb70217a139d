module github.com/nri-csig/nri-csig

go 1.26.6

require github.com/spf13/cobra v1.10.2

require (
	github.com/google/go-containerregistry v0.22.1 // indirect
	github.com/inconshreveable/mousetrap v1.1.0 // indirect
	github.com/spf13/pflag v1.0.10 // indirect
)
