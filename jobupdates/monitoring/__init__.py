"""Who is connected and what was delivered: the registry and its records,
``/ws/stats``, the Prometheus series, and the staff console.
"""
