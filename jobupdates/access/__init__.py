"""Who may connect, and to what: the ASGI middleware (origin, tokens), the
checks before accept, permissions, and per-connection limits.
"""
