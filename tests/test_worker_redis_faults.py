"""Real worker processes while Redis fails under them: restarted with jobs queued, away for 30 s and 90 s mid-job,
restarted empty, refusing writes (maxmemory, a failed snapshot, a replica). Nothing is lost, nothing is sent twice.
(Split from test_worker_processes.py so that the two long files run on both test processes at once.)"""

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
from tests.harness import BotThread, Workers, gray_photo, settings_for, wait_until


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
        wait_until(lambda: redis.Redis.from_url(server.url).llen("rq:queue:paintbot") == 2, 10, "two queued jobs")
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
        wait_until(lambda: Worker.count(queue=queue) == 1 and conn.exists(keys.ENGINES, keys.STYLES) == 2, 120,
              "worker-a to register")
        server.stop()
        server.start()
        restarted = time.monotonic()
        wait_until(lambda: Worker.count(queue=queue) == 1 and conn.exists(keys.ENGINES, keys.STYLES) == 2, 90,
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


# Each way a managed Redis refuses writes for a while, made real, how it is lifted again, and for how long it is
# held. OOM is held longer than a running job's heartbeat lasts (worker/main.py HEARTBEAT_TTL, 45 s): the job
# must not be taken for abandoned when writes come back. The others, whose error replies take the same path,
# for 20 s: two of the job's heartbeats (every 10 s) and many of the scheduler's rounds fail meanwhile.
REFUSALS = {
    "OOM (memory full under noeviction)": (["CONFIG", "SET", "maxmemory", "1"], ["CONFIG", "SET", "maxmemory", "0"], 60),
    "READONLY (a failover made it a replica)": (["REPLICAOF", "127.0.0.1", "1"], ["REPLICAOF", "NO", "ONE"], 20),
    "MISCONF (the disk refuses its snapshot)": (["CONFIG", "SET", "dir", "/proc"], ["CONFIG", "SET", "save", ""], 20),
}


def test_redis_refusing_writes_is_ridden_out_and_nothing_is_lost(telegram, tmp_path, worker_env):
    """OOM, READONLY and MISCONF error replies used to make RQ quit ("unhandled exception, quitting"): the
    idle worker died in its heartbeat, the scheduler too, the running job's user heard nothing. Each is made
    real for 20-60 s while a job is in flight: worker and scheduler back off and carry on, the job is
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
        for n, (name, (refuse, lift, seconds)) in enumerate(REFUSALS.items()):
            chat = tg.private_chat(9500 + n)
            tg.delay(DOWNLOAD, 3)  # the photo arrives once Redis refuses writes
            photo = tg.user_sends_photo(chat, gray_photo(seed=n))
            tg.wait_for("getFile", count=n + 1, timeout=120)
            if name.startswith("MISCONF"):
                conn.config_set("save", "3600 1")
                conn.execute_command(*refuse)
                conn.bgsave()
                wait_until(lambda: conn.info("persistence")["rdb_last_bgsave_status"] == "err", 10, "the snapshot to fail")
            else:
                conn.execute_command(*refuse)
            tg.delay(DOWNLOAD, 0)
            started = time.monotonic()
            other = tg.private_chat(9600 + n)
            tg.user_sends_photo(other, gray_photo(seed=10 + n))  # a new request during the refusal
            (told,) = tg.wait_for("sendMessage", chat_id=other["id"], timeout=30)
            assert told.params["text"] == render("unavailable"), (name, told.params["text"])
            time.sleep(max(0.0, seconds - (time.monotonic() - started)))
            assert [p.poll() for p in procs] == [None, None], (name, workers.log("worker-a")[-3000:])
            assert not tg.calls("sendPhoto", chat_id=chat["id"]), "nothing could be recorded: nothing sent yet"
            conn.execute_command(*lift)
            if name.startswith("MISCONF"):
                conn.config_set("dir", str(tmp_path / "data"))
            back = time.monotonic()
            (sent,) = tg.wait_for("sendPhoto", chat_id=chat["id"], timeout=90)
            print(f"{name}: {seconds} s refused, result delivered {time.monotonic() - back:.1f} s after")
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
