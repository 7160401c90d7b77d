# The lab API: what chapters, tests and figures hold (see labkit/__init__.py).
"""The lab as chapters use it (nodes, pods, commands) and what a backend provides."""
