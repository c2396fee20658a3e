"""What every Daphne process runs for an update: the fast-path channel layer,
each connection's feed and catch-up, and the reach into Daphne and Twisted.
"""
