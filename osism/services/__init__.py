"""Services of the event stream: WebSocket fan-out, Redis bridge, listener."""
