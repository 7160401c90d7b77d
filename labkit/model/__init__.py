# The cluster model: what every other layer is written in terms of.
"""Results, errors, the manifests both labs read, Calico's rules, tools' packages."""
