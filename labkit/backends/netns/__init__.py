# The embedded lab: a replica of the seed's kind + Calico cluster in Linux namespaces.
"""The netns backend: the seed's cluster in Linux namespaces, held by an agent the host starts."""

# :mod:`.plan` turns the topology into the ``ip``/``bridge`` commands Calico's CNI plugin,
# Felix and BIRD would have run; :mod:`.agent` is the process that owns the namespaces and
# runs commands in them; :mod:`.launcher` starts it (``launcher.start``) and talks to it
# from the host (``launcher.NetnsBackend``).
#
# Nothing is imported here: every lab's agent is a new process that imports this package
# first, and the launcher's imports are no use to it.
