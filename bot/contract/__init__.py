"""What the bot and the workers agree on: the only part of bot/ that worker/ and bench/ import (bot/web/ also
imports bot/queue.py, for the admission of a Send).

The bot (producer) and the workers (consumers) are separate processes, deployed separately, that meet only
in Redis. Everything both sides must read the same way lives here, and nothing else:

| module | what |
|---|---|
| `job` | the job on the queue (`Job`, `Op`, album items), the task RQ runs, the download size limit |
| `options` | each operation's options, and the vocabulary commands are parsed against (`EngineInfo`) |
| `keys` | every Redis key: the map of the keyspace |
| `records` | what workers write for the bot: the engines and presets they run, which engine made a result, `release` |
| `readiness` | idle workers and waiting jobs: whether the bot says "Queued" |
| `cache` | the result cache: a repeated request answered by the bot from a result a worker sent |
| `followups` | the buttons under a result and the record a tap is answered from |
| `webapp` | the Mini App "Pick colours" (bot/web/): initData checks, the grant a button opens, the button itself |
| `texts`, `locales/`, `captions` | everything paintbot says, in every language, and the caption of a result |
| `settings` | the service's configuration from the environment (the token, Redis, limits) |
| `logs`, `health` | how every paintbot process logs (secrets masked) and serves /metrics and /healthz |

Rules (tests/test_layers.py holds them, with import-linter): this package imports no `telegram.ext`, no
`rq`, no `torch` and nothing else of bot/; the worker and bench/ import nothing else of bot/.

Rolling upgrades: the bot (one replica) is replaced at once while workers are rolled gradually, so for
minutes records cross versions both ways. Every record read from Redis or the queue (`Job`, `Followup`,
`Cached`, the published engines, the bot's album records) ignores fields it does not know and gives the
ones it lacks their defaults; a job's new fields travel inside its `options` (bot/contract/job.py).
"""
