"""Writing to a WebSocket client: frames built once for many clients, the
``Transport`` seam the fan-out writes through, and the uvicorn protocol that
sends many frames in one write (the only module that knows uvicorn's)."""
