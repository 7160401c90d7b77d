// kind v0.12.0, the seed's kind (its default node image is kindest/node:v1.23.4): read, not
// built, for the default storage manifest its node image carries; go.sum verifies it.
module labkit.parts/kind

go 1.17

require sigs.k8s.io/kind v0.12.0

require (
	github.com/BurntSushi/toml v0.4.1 // indirect
	github.com/alessio/shellescape v1.4.1 // indirect
	github.com/evanphx/json-patch/v5 v5.6.0 // indirect
	github.com/inconshreveable/mousetrap v1.0.0 // indirect
	github.com/mattn/go-isatty v0.0.14 // indirect
	github.com/pelletier/go-toml v1.9.4 // indirect
	github.com/pkg/errors v0.9.1 // indirect
	github.com/spf13/cobra v1.2.1 // indirect
	github.com/spf13/pflag v1.0.5 // indirect
	golang.org/x/sys v0.0.0-20210630005230-0f9fa26af87c // indirect
	gopkg.in/yaml.v2 v2.4.0 // indirect
	gopkg.in/yaml.v3 v3.0.0-20210107192922-496545a6307b // indirect
	sigs.k8s.io/yaml v1.3.0 // indirect
)
