"""The HTTP API: FastAPI over the container's services, served by uvicorn."""

from bot.api.app import create_app
from bot.api.server import ApiServer, ApiStartError, serve_api

__all__ = ["ApiServer", "ApiStartError", "create_app", "serve_api"]
