"""Real worker processes: killed with SIGKILL mid-job, stopped with SIGTERM, Redis restarted under them."""

import os
import signal
import subprocess
import sys
import time

import pytest
import redis
from rq import Queue
from rq.serializers import JSONSerializer

from tests.conftest import SHARED, RedisServer
from tests.harness import BotThread, gray_photo, settings_for


@pytest.fixture
def worker_env(telegram, standin_weights, tmp_path):
    def env(redis_url):
        return {**os.environ,
                "TELEGRAM_BOT_TOKEN": telegram.token, "PAINTBOT_TELEGRAM_API": telegram.api_root,
                "REDIS_URL": redis_url, "PAINTBOT_DEVICE": "cpu", "PAINTBOT_TORCH_THREADS": "1",
                "PAINTBOT_COLORIZE_MODEL": "eccv16", "PAINTBOT_COLORIZE_WEIGHTS": str(standin_weights["eccv16"]),
                "PAINTBOT_ADAIN_ENCODER_WEIGHTS": str(standin_weights["adain_vgg_normalised"]),
                "PAINTBOT_ADAIN_DECODER_WEIGHTS": str(standin_weights["adain_decoder"]),
                "PAINTBOT_STYLES_DIR": str(SHARED / "styles"), "PAINTBOT_CACHE_DIR": str(tmp_path / "cache"),
                "PAINTBOT_STYLE_MAX_SIZE": "112"}
    return env


class Workers:
    def __init__(self, env, tmp_path):
        self.env, self.tmp_path, self.procs = env, tmp_path, []

    def start(self, name: str) -> subprocess.Popen:
        log = open(self.tmp_path / f"{name}.log", "w")
        p = subprocess.Popen([sys.executable, "-m", "worker.main", "--name", name], env=self.env,
                             stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(p)
        return p

    def log(self, name: str) -> str:
        return (self.tmp_path / f"{name}.log").read_text()

    def stop_all(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)


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


def test_killed_worker_job_is_retried_on_another_within_two_minutes(telegram, redis_url, worker_env, tmp_path):
    tg, conn = telegram, redis.Redis.from_url(redis_url)
    bot = BotThread(settings_for(telegram, redis_url)).start()
    workers = Workers(worker_env(redis_url), tmp_path)
    try:
        group, photo = _slow_request(tg, -100801)
        a = workers.start("worker-a")
        _wait(lambda: _started(conn) == 1 and tg.calls("editMessageText"), 90, "worker-a to start the job")
        a.send_signal(signal.SIGKILL)
        a.wait(10)
        died = time.monotonic()
        workers.start("worker-b")
        tg.wait_for("sendPhoto", timeout=150)
        took = time.monotonic() - died
        print(f"result delivered {took:.0f} s after the worker died")
        assert took < 120 + 30, "retried within two minutes (plus the job's own run time)"
        time.sleep(2)
        (sent,) = tg.calls("sendPhoto")
        assert sent.reply_to == photo["message_id"]
        assert "abandoned" not in workers.log("worker-b") or "retr" in workers.log("worker-b")
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
        a = workers.start("worker-a")
        _wait(lambda: _started(conn) == 1 and tg.calls("editMessageText"), 90, "worker-a to start the job")
        a.send_signal(signal.SIGKILL)
        a.wait(10)
        died = time.monotonic()
        workers.start("worker-b")
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
