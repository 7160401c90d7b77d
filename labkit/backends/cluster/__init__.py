# What the kind and native labs share: the manifests' settings, readiness, inventory, commands.
"""What both real-cluster backends (kind, native) share: settings, readiness, inventory, execs."""
