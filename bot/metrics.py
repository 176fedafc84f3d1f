"""The bot's own Prometheus metrics (the workers' are in worker/metrics.py; bot/contract/health.py serves
them on PAINTBOT_METRICS_PORT, with /healthz)."""

from __future__ import annotations

from prometheus_client import Counter

UPDATES = Counter("paintbot_updates", "Telegram updates received", ["kind"])
ENQUEUED = Counter("paintbot_jobs_enqueued", "Jobs put on the queue", ["op"])
CACHED = Counter("paintbot_results_from_cache", "Requests answered from the result cache, without a job", ["op"])
REFUSED = Counter("paintbot_jobs_refused", "Requests answered without a job", ["reason"])
# 👍/👎 on results by the engine that made them; "removed" counts reactions taken back, so
# added - removed is what people think now.
REACTIONS = Counter("paintbot_result_reactions", "Thumbs up/down reactions to results, by engine",
                    ["engine", "reaction", "change"])
