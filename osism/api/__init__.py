"""The API process's edge: the FastAPI app and what serves its clients.

``uvicorn osism.api:app`` serves the app built in ``osism.api.routes``; it is
looked up on first use, so that importing a module of this package (the
system channel, the wire models) does not build the app.
"""

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "app":
        from osism.api.routes import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
