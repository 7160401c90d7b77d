# The integrations: the only code that knows mkdocs, sybil and pytest.
"""The mkdocs site (build, publish, drift check) and the sybil adapter."""
