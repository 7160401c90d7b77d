# The embedded lab: a replica of the seed's kind + Calico cluster in Linux namespaces.
"""The netns backend: the seed's cluster in Linux namespaces, held by an agent the host starts."""

# The ``netns`` backend.
#
# :mod:`.plan` turns the topology into the ``ip``/``bridge`` commands Calico's
# CNI plugin, Felix and BIRD would have run; :mod:`.agent` is the process that
# owns the namespaces and runs commands in them; :mod:`.launcher` starts it and
# talks to it from the host.

from .launcher import NetnsBackend, start

__all__ = ["NetnsBackend", "start"]
