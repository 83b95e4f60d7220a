"""``python -m cds_service``: run the service on $HOST:$PORT with gunicorn (the deployed server)."""

from __future__ import annotations

import sys

from gunicorn.app.base import BaseApplication

from .app import create_app
from .settings import Settings


class _Server(BaseApplication):
    def __init__(self, settings: Settings):
        self.settings = settings
        super().__init__()

    def load_config(self) -> None:
        self.cfg.set("bind", f"{self.settings.host}:{self.settings.port}")
        self.cfg.set("workers", 1)
        self.cfg.set("threads", 8)
        self.cfg.set("timeout", 30)
        self.cfg.set("accesslog", "-")

    def load(self):
        return create_app(self.settings)


def main(argv: list[str] | None = None) -> int:
    settings = Settings()
    _Server(settings).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
