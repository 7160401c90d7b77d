# The kind lab: the seed's real cluster behind the same API (see backend.py).
