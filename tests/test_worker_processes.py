"""Real worker processes: killed with SIGKILL mid-job, stopped with SIGTERM, Redis restarted under them."""

import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
import redis
from rq import Queue
from rq.serializers import JSONSerializer

from bot.contract.job import TASK, Job
from tests.conftest import RedisServer
from tests.fake_telegram import DOWNLOAD
from tests.harness import BotThread, Workers, gray_photo, settings_for


def _wait(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.2)


def _slow_request(tg, chat_id: int):
    """A /style ... hq request in a group: the optimisation engine keeps a worker busy for a while."""
    group = tg.group_chat(chat_id)
    photo = tg.user_sends_photo(group, gray_photo(112, 112), user=tg.user(70))
    tg.user_sends_text(group, "/style vangogh hq", user=tg.user(70), reply_to=photo["message_id"])
    tg.wait_for("sendMessage", chat_id=chat_id)
    return group, photo


def _started(conn) -> int:
    return Queue("paintbot", connection=conn, serializer=JSONSerializer).started_job_registry.count


def _kill_mid_job(tg, conn, workers) -> float:
    """worker-a takes the job and is SIGKILLed in the middle of it; worker-b starts. Returns the time of death."""
    workers.start("scheduler", "--scheduler")
    a = workers.start("worker-a")
    _wait(lambda: _started(conn) == 1 and tg.calls("editMessageText"), 90, "worker-a to start the job")
    a.send_signal(signal.SIGKILL)
    a.wait(10)
    died = time.monotonic()
    workers.start("worker-b")
    return died


def test_killed_worker_job_is_retried_on_another_within_two_minutes(telegram, redis_url, worker_env, tmp_path):
    tg, conn = telegram, redis.Redis.from_url(redis_url)
    bot = BotThread(settings_for(telegram, redis_url)).start()
    workers = Workers(worker_env(redis_url), tmp_path)
    try:
        group, photo = _slow_request(tg, -100801)
        died = _kill_mid_job(tg, conn, workers)
        tg.wait_for("sendPhoto", timeout=150)
        took = time.monotonic() - died
        print(f"result delivered {took:.0f} s after the worker died")
        assert took < 120 + 30, "retried within two minutes (plus the job's own run time)"
        time.sleep(2)
        (sent,) = tg.calls("sendPhoto")
        assert sent.reply_to == photo["message_id"]
    finally:
        workers.stop_all()
        bot.stop()


def test_killed_worker_with_no_retries_left_user_gets_an_apology(telegram, redis_url, worker_env, tmp_path):
    tg, conn = telegram, redis.Redis.from_url(redis_url)
    bot = BotThread(settings_for(telegram, redis_url)).start()
    workers = Workers(worker_env(redis_url), tmp_path)
    try:
        group, photo = _slow_request(tg, -100802)
        q = Queue("paintbot", connection=conn, serializer=JSONSerializer)
        _wait(lambda: q.count == 1, 10, "the job to be queued")
        (job,) = q.jobs
        job.retries_left = 0  # as after two earlier crashes
        job.save()
        died = _kill_mid_job(tg, conn, workers)
        _wait(lambda: any("went wrong" in c.params["text"] for c in tg.calls("editMessageText")), 150,
              "the apology")
        assert time.monotonic() - died < 120
        assert not tg.calls("sendPhoto")
    finally:
        workers.stop_all()
        bot.stop()


def test_sigterm_lets_the_worker_finish_its_job(telegram, redis_url, worker_env, tmp_path):
    tg, conn = telegram, redis.Redis.from_url(redis_url)
    bot = BotThread(settings_for(telegram, redis_url)).start()
    workers = Workers(worker_env(redis_url), tmp_path)
    try:
        _slow_request(tg, -100803)
        w = workers.start("worker-t")
        _wait(lambda: _started(conn) == 1 and tg.calls("editMessageText"), 90, "the worker to start the job")
        w.send_signal(signal.SIGTERM)
        assert w.wait(120) == 0, workers.log("worker-t")[-2000:]
        (sent,) = tg.calls("sendPhoto")  # finished before exiting
        assert _started(conn) == 0 and Queue("paintbot", connection=conn).count == 0
    finally:
        workers.stop_all()
        bot.stop()


def test_jobs_queued_before_a_redis_restart_are_processed_after_it(telegram, tmp_path, worker_env):
    """With AOF persistence (as deploy/ configures Redis), a restart loses no queued job."""
    server = RedisServer(tmp_path / "aof", appendonly=True)
    (tmp_path / "aof").mkdir()
    server.start()
    bot = BotThread(settings_for(telegram, server.url)).start()
    try:
        tg = telegram
        for i, chat_id in enumerate((901, 902)):
            tg.user_sends_photo(tg.private_chat(chat_id), gray_photo(seed=i))
            tg.wait_for("sendMessage", chat_id=chat_id)
        _wait(lambda: redis.Redis.from_url(server.url).llen("rq:queue:paintbot") == 2, 10, "two queued jobs")
        server.stop()
        server.start()
        assert redis.Redis.from_url(server.url).llen("rq:queue:paintbot") == 2
        env = worker_env(server.url)
        out = subprocess.run([sys.executable, "-m", "worker.main", "--burst"], env=env, capture_output=True,
                             text=True, timeout=180)
        assert out.returncode == 0, out.stderr[-2000:]
        assert sorted(c.chat_id for c in tg.calls("sendPhoto")) == [901, 902]
    finally:
        bot.stop()
        server.stop()


@pytest.mark.parametrize("outage", [30, 90])
def test_redis_outage_mid_job_loses_nothing(telegram, tmp_path, worker_env, outage):
    """Redis stops right after the worker has asked for the photo and stays away for `outage` s while the
    model runs: the worker and RQ's scheduler wait for it instead of exiting, the finished result is
    delivered once, and a retry the scheduler holds is still put back on the queue afterwards."""
    (tmp_path / "aof").mkdir()
    server = RedisServer(tmp_path / "aof", appendonly=True)  # as deploy/ runs Redis
    server.start()
    tg, conn = telegram, redis.Redis.from_url(server.url)
    bot = BotThread(settings_for(telegram, server.url)).start()
    workers = Workers(worker_env(server.url), tmp_path)
    try:
        procs = [workers.start("scheduler", "--scheduler"), workers.start("worker-a")]
        chat = tg.private_chat(991)
        photo = tg.user_sends_photo(chat, gray_photo(seed=3))
        tg.wait_for("sendMessage", chat_id=991)
        tg.delay(DOWNLOAD, 2)  # the photo arrives after Redis is gone
        tg.wait_for("getFile", timeout=120)
        server.stop()
        tg.delay(DOWNLOAD, 0)
        time.sleep(outage)
        assert [p.poll() for p in procs] == [None, None], workers.log("worker-a")[-3000:]
        server.start()
        back = time.monotonic()
        (sent,) = tg.wait_for("sendPhoto", timeout=60)
        print(f"{outage} s outage: result delivered {time.monotonic() - back:.1f} s after Redis came back")
        assert sent.reply_to == photo["message_id"]

        # The scheduler survived too: a retry due in a second is put back on the queue and delivered.
        group = tg.group_chat(-100991)
        later = tg.user_sends_photo(group, gray_photo(seed=4), user=tg.user(992))  # no command: the bot ignores it
        retry = Job("colorize", group["id"], later["message_id"], later["message_id"],
                    later["photo"][-1]["file_id"], False, user_id=992)
        Queue("paintbot", connection=conn, serializer=JSONSerializer).enqueue_in(
            timedelta(seconds=1), TASK, retry.to_dict(), job_id=retry.job_id)
        tg.wait_for("sendPhoto", chat_id=group["id"], timeout=60)
        time.sleep(1)  # nothing else follows
        assert len(tg.calls("sendPhoto")) == 2
        assert not [c for c in tg.calls("editMessageText") if "went wrong" in c.params["text"]]
        assert [m["text"] for m in tg.bot_messages(991) if "text" in m] == [], "status message removed"
        assert conn.zcard("paintbot:inflight:991") == 0
        assert [p.poll() for p in procs] == [None, None]
    finally:
        workers.stop_all()
        bot.stop()
        server.stop()


def test_redis_restarted_empty_the_worker_registers_and_publishes_again(telegram, worker_env, tmp_path):
    """Redis restarted without persistence (or flushed, or failed over to an empty replica) forgets the
    workers and the engines they publish: /stats said "Workers: 0" while they served, and the bot could not
    resolve an engine. A worker notices at its next idle heartbeat and says again who it is."""
    from rq import Worker

    from bot.contract import keys

    (tmp_path / "empty").mkdir()
    server = RedisServer(tmp_path / "empty")  # no AOF, no snapshots: a restart comes back empty
    server.start()
    tg, conn = telegram, redis.Redis.from_url(server.url)
    queue = Queue("paintbot", connection=conn, serializer=JSONSerializer)
    bot = BotThread(settings_for(telegram, server.url)).start()
    workers = Workers(worker_env(server.url), tmp_path)
    try:
        workers.start("scheduler", "--scheduler")
        workers.start("worker-a")
        _wait(lambda: Worker.count(queue=queue) == 1 and conn.exists(keys.ENGINES, keys.STYLES) == 2, 120,
              "worker-a to register")
        server.stop()
        server.start()
        restarted = time.monotonic()
        _wait(lambda: Worker.count(queue=queue) == 1 and conn.exists(keys.ENGINES, keys.STYLES) == 2, 90,
              "worker-a to register and publish again")
        print(f"registered again {time.monotonic() - restarted:.1f} s after Redis came back empty")
        assert "Redis has forgotten this worker" in workers.log("worker-a")
        chat = tg.private_chat(9301)
        tg.user_sends_photo(chat, gray_photo(96, 72))
        tg.wait_for("sendPhoto", timeout=90)  # and it serves
    finally:
        workers.stop_all()
        bot.stop()
        server.stop()


# Each way a managed Redis refuses writes for a while, made real, and how it is lifted again.
REFUSALS = {
    "OOM (memory full under noeviction)": (["CONFIG", "SET", "maxmemory", "1"], ["CONFIG", "SET", "maxmemory", "0"]),
    "READONLY (a failover made it a replica)": (["REPLICAOF", "127.0.0.1", "1"], ["REPLICAOF", "NO", "ONE"]),
    "MISCONF (the disk refuses its snapshot)": (["CONFIG", "SET", "dir", "/proc"], ["CONFIG", "SET", "save", ""]),
}
REFUSAL_SECONDS = 60


def test_redis_refusing_writes_is_ridden_out_and_nothing_is_lost(telegram, tmp_path, worker_env):
    """OOM, READONLY and MISCONF error replies used to make RQ quit ("unhandled exception, quitting"): the
    idle worker died in its heartbeat, the scheduler too, the running job's user heard nothing. Each is made
    real for a minute while a job is in flight: worker and scheduler back off and carry on, the job is
    delivered once, and the bot answers a new request meanwhile with "briefly unavailable" instead of
    queueing into the void."""
    from bot.contract.texts import render

    (tmp_path / "data").mkdir()
    server = RedisServer(tmp_path / "data", extra=("--enable-protected-configs", "yes"))
    server.start()
    tg, conn = telegram, redis.Redis.from_url(server.url)
    bot = BotThread(settings_for(telegram, server.url)).start()
    workers = Workers(worker_env(server.url), tmp_path)
    try:
        procs = [workers.start("scheduler", "--scheduler"), workers.start("worker-a")]
        for n, (name, (refuse, lift)) in enumerate(REFUSALS.items()):
            chat = tg.private_chat(9500 + n)
            tg.delay(DOWNLOAD, 3)  # the photo arrives once Redis refuses writes
            photo = tg.user_sends_photo(chat, gray_photo(seed=n))
            tg.wait_for("getFile", count=n + 1, timeout=120)
            if name.startswith("MISCONF"):
                conn.config_set("save", "3600 1")
                conn.execute_command(*refuse)
                conn.bgsave()
                _wait(lambda: conn.info("persistence")["rdb_last_bgsave_status"] == "err", 10, "the snapshot to fail")
            else:
                conn.execute_command(*refuse)
            tg.delay(DOWNLOAD, 0)
            started = time.monotonic()
            other = tg.private_chat(9600 + n)
            tg.user_sends_photo(other, gray_photo(seed=10 + n))  # a new request during the refusal
            (told,) = tg.wait_for("sendMessage", chat_id=other["id"], timeout=30)
            assert told.params["text"] == render("unavailable"), (name, told.params["text"])
            time.sleep(max(0.0, REFUSAL_SECONDS - (time.monotonic() - started)))
            assert [p.poll() for p in procs] == [None, None], (name, workers.log("worker-a")[-3000:])
            assert not tg.calls("sendPhoto", chat_id=chat["id"]), "nothing could be recorded: nothing sent yet"
            conn.execute_command(*lift)
            if name.startswith("MISCONF"):
                conn.config_set("dir", str(tmp_path / "data"))
            back = time.monotonic()
            (sent,) = tg.wait_for("sendPhoto", chat_id=chat["id"], timeout=90)
            print(f"{name}: {REFUSAL_SECONDS} s refused, result delivered {time.monotonic() - back:.1f} s after")
            assert sent.reply_to == photo["message_id"]
        time.sleep(2)
        for n in range(len(REFUSALS)):  # each once, and nothing for the requests refused meanwhile
            assert len(tg.calls("sendPhoto", chat_id=9500 + n)) == 1 and not tg.calls("sendPhoto", chat_id=9600 + n)
        assert [p.poll() for p in procs] == [None, None]
        assert "quitting" not in workers.log("worker-a") + workers.log("scheduler")
    finally:
        workers.stop_all()
        bot.stop()
        server.stop()


def test_idle_workers_stop_promptly_on_ctrl_c(telegram, redis_url, worker_env, tmp_path):
    """Ctrl-C (SIGINT, as deploy/local.sh passes it on) and SIGTERM stop an idle worker at once: RQ's command
    listener read its pub/sub channel a minute at a time, and a stop waited for that read (seen as about
    60 s after "warm shut down requested" in a third of the stops)."""
    from rq import Worker

    conn = redis.Redis.from_url(redis_url)
    queue = Queue("paintbot", connection=conn, serializer=JSONSerializer)
    workers = Workers(worker_env(redis_url), tmp_path)
    try:
        procs = [workers.start(f"worker-{i}") for i in range(3)]
        _wait(lambda: Worker.count(queue=queue) == 3, 180, "three idle workers")
        time.sleep(3)  # each listener is in the middle of its read
        stopped = time.monotonic()
        for i, p in enumerate(procs):
            p.send_signal(signal.SIGINT if i % 2 == 0 else signal.SIGTERM)
        took = []
        for p in procs:
            p.wait(120)
            took.append(time.monotonic() - stopped)
        print("idle workers stopped in", ", ".join(f"{t:.1f} s" for t in took))
        assert max(took) < 15, took
    finally:
        workers.stop_all()
