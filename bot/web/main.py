"""`paintbot-web`: serves the Mini App "Pick colours" (bot/web/server.py) on PAINTBOT_WEB_PORT, behind the HTTPS
address PAINTBOT_WEBAPP_URL (a Kubernetes ingress, or locally a tunnel: README "Pick colours"). One more process
beside the bot and the workers; it holds no model and computes nothing, so one small replica serves many pages."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from bot.contract.settings import Settings, at_start

log = logging.getLogger("paintbot.web")


async def serve(settings: Settings, port: int) -> None:
    from bot.web.server import MAX_BODY, make_app

    make_app(settings).listen(port, max_body_size=MAX_BODY, xheaders=True)
    log.info("paintbot-web listening on port %s for %s", port, settings.webapp_url or "(PAINTBOT_WEBAPP_URL unset)")
    await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="paintbot-web", description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, help="port to listen on (default PAINTBOT_WEB_PORT, 8080)")
    args = p.parse_args(argv)
    settings = at_start("paintbot-web")
    if settings is None:
        return 2
    if not settings.webapp_url:
        log.warning("PAINTBOT_WEBAPP_URL is not set: the bot offers no Pick colours button, so no page will open")
    try:
        asyncio.run(serve(settings, args.port or settings.web_port))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
