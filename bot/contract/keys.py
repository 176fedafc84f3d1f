"""Every Redis key paintbot uses: the map of the keyspace, in one place.

Why one module: the bot and the workers share one Redis, and a key spelled twice is a key that can drift
apart between two releases running side by side. Each record asks this module for its key (as RQ's
`Job.key_for` does): a new key shape is one line here, with what it holds, who writes it and how long it
lives. Key names carry ids and short names only, never a user's words (the result cache hashes them) and
never content. RQ's own keys (`rq:queue:paintbot`, `rq:job:<id>`, its registries) are RQ's business.

| key | type | written by | read by | lives |
|---|---|---|---|---|
| `paintbot:request:<job id>` | string | bot (admission claim) | bot; worker removes a tap's (`release`) | REQUEST_TTL (bot/queue.py); a tap's: until its job ends |
| `paintbot:rate:<sender>:<minute>` | counter | bot | bot | 2 minutes |
| `paintbot:inflight:<sender>` | sorted set of job ids | bot (admit) | bot; worker removes (`release`) | while jobs run |
| `paintbot:jobs:waiting` | sorted set of job ids | bot (admit) | bot; worker removes (started) | an hour at most |
| `paintbot:workers:idle` | sorted set of worker names | worker | bot | 45 s unless renewed |
| `paintbot:engines` | hash: engine name -> EngineInfo JSON | worker at start | bot | until replaced |
| `paintbot:styles` | JSON list of preset names | worker at start | bot | until replaced |
| `paintbot:worker:<name>:ready` | string: what the worker runs, for the operator | worker at start | deploy/local_steps.py (the "ready" line) | until it stops, a day at most |
| `paintbot:delivered:<job id>` | JSON list of the result's message ids | worker, from Telegram's answer | worker | a week; a tap's: until its job ends (`release`) |
| `paintbot:sending:<job id>` | string: the sending attempt's token | worker, while it sends | worker | 20 s, renewed while alive |
| `paintbot:flood:<chat id>`, `paintbot:flood:all` | string: next free send slot | worker | worker | seconds |
| `paintbot:result:<chat>:<message>` | string: engine name | worker | bot (reactions) | a week |
| `paintbot:cache:<digest>` | Cached JSON | worker | bot | PAINTBOT_RESULT_CACHE_TTL |
| `paintbot:followup:<rid>` | Followup JSON | worker, bot | bot | PAINTBOT_RESULT_CACHE_TTL |
| `paintbot:language:<user>` | string: language code | bot | bot | a year |
| `paintbot:album:<chat>:<group>` | hash: message id -> picture JSON | bot | bot | 2 days |
| `paintbot:albums:gathering` | set of the keys below | bot | bot at start | until handled |
| `paintbot:albums:gathering:<chat>:<group>` | hash: message id -> update JSON | bot | bot at start | a day |
| `paintbot:owned:<user>` | set of the keys above a user's requests made (cache, follow-ups, albums) | worker, bot | bot (`/forget`) | as long as the longest of them |
| `paintbot:hints:<token>` | the Mini App grant (bot/contract/webapp.py Grant JSON) | worker, bot | web | PAINTBOT_RESULT_CACHE_TTL |
| `paintbot:hints:reply:<request>` | list: one preview JPEG or suggestion JSON | worker (preview queue) | web (BLPOP) | 60 s |
| `paintbot:hints:rate:<user>:<minute>` | counter of a user's previews | web | web | 2 minutes |
| `paintbot:last_photo:<chat>` | the last photo message a person sent in a private chat (JSON) | bot | bot (`/style` without a reply) | 5 minutes |
"""

from __future__ import annotations

PREFIX = "paintbot"

ENGINES = f"{PREFIX}:engines"
STYLES = f"{PREFIX}:styles"
IDLE_WORKERS = f"{PREFIX}:workers:idle"
WAITING_JOBS = f"{PREFIX}:jobs:waiting"
ALBUMS_GATHERING = f"{PREFIX}:albums:gathering"
FLOOD_ALL = f"{PREFIX}:flood:all"


def worker_ready(name: str) -> str:
    return f"{PREFIX}:worker:{name}:ready"


def request(job_id: str) -> str:
    return f"{PREFIX}:request:{job_id}"


def rate(sender: int | None, minute: int) -> str:
    return f"{PREFIX}:rate:{sender}:{minute}"


def inflight(sender: int | None) -> str:
    return f"{PREFIX}:inflight:{sender}"


def delivered(job_id: str) -> str:
    return f"{PREFIX}:delivered:{job_id}"


def sending(job_id: str) -> str:
    return f"{PREFIX}:sending:{job_id}"


def flood(chat_id: int) -> str:
    return f"{PREFIX}:flood:{chat_id}"


def result_engine(chat_id: int, message_id: int) -> str:
    return f"{PREFIX}:result:{chat_id}:{message_id}"


def cached_result(digest: str) -> str:
    return f"{PREFIX}:cache:{digest}"


def followup(rid: str) -> str:
    return f"{PREFIX}:followup:{rid}"


def language(user_id: int) -> str:
    return f"{PREFIX}:language:{user_id}"


def album(chat_id: int, group: str) -> str:
    return f"{PREFIX}:album:{chat_id}:{group}"


def album_gathering(chat_id: int, group: str) -> str:
    return f"{PREFIX}:albums:gathering:{chat_id}:{group}"


def owned(user_id: int) -> str:
    return f"{PREFIX}:owned:{user_id}"


def last_photo(chat_id: int) -> str:
    return f"{PREFIX}:last_photo:{chat_id}"


def hints_grant(token: str) -> str:
    return f"{PREFIX}:hints:{token}"


def hints_reply(request: str) -> str:
    return f"{PREFIX}:hints:reply:{request}"


def hints_rate(user_id: int, minute: int) -> str:
    return f"{PREFIX}:hints:rate:{user_id}:{minute}"
