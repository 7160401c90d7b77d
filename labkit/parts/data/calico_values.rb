# The values file Calico's docs site fed `helm template` for its released manifests: the
# site's own gen_values() and parse_versions() (calico/_plugins/values.rb and lib.rb, read
# from the Calico module) with _config.yml's image names, _data/versions.yml, no registry.
# Usage: ruby calico_values.rb CALICO_MODULE/calico
require "yaml"
site = ARGV.fetch(0)
require File.join(site, "_plugins/lib.rb")
require File.join(site, "_plugins/values.rb")
config = YAML.load_file(File.join(site, "_config.yml"))
versions = YAML.load_file(File.join(site, "_data/versions.yml"))
puts gen_values(parse_versions(versions), config["imageNames"], nil, "calico")
