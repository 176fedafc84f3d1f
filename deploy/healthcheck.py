"""Container health check: exit 0 when this container's paintbot process answers 200 on /healthz.

Used by the images' HEALTHCHECK (bot and worker). Standard library only, so it runs in both
images without curl. The process serves /healthz on PAINTBOT_METRICS_PORT (bot/contract/health.py).
"""

import os
import sys
import urllib.request

port = os.environ.get("PAINTBOT_METRICS_PORT", "").strip()
if not port:
    sys.exit("PAINTBOT_METRICS_PORT is not set: the process serves no /healthz to check")
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
        sys.exit(0 if resp.status == 200 else f"unhealthy: /healthz answered {resp.status}")
except Exception as exc:  # refused, timed out, or an HTTP error status such as 503
    sys.exit(f"unhealthy: {exc}")
