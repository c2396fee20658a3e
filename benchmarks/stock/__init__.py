"""Stock Channels, as its tutorial builds it: the comparison the project must beat.

A consumer that ``json.dumps`` each event and sends it, Channels' default
dispatch (with its ``close_old_connections`` thread hop), and channels_redis's
core ``RedisChannelLayer``; fed by a bridge that ``group_send``s the parsed dict.
"""
