"""Fan-out benchmark of ``osism api`` on loopback.

``python -m bench`` (or ``nox -s bench``) starts its own redis-server and
``osism api`` on free loopback ports, connects real WebSocket clients from
separate processes, publishes events through Redis exactly as the listener
does, and prints deliveries/s, latency, loss, server RSS and CPU per event,
and the clients' CPU use. The same run measures a deliberately naive serial
broadcaster (``bench.naive``) on the same harness and prints our figures as
ratios to it. Everything it starts is stopped again, also on Ctrl-C.
"""
