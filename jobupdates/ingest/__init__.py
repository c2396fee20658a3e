"""Everything ``manage.py run_bridge`` runs: Redis pub/sub in, validated updates
recorded in the history and sent on the channel layer.
"""
