"""Running it for real: metrics and health endpoints during an end-to-end run, webhook mode, clean stops."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

from tests.conftest import free_port
from tests.harness import gray_photo
from tests.harness import Workers


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _metric(text: str, name: str, **labels) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(name + ("{" + want + "}" if want else " ")) or (
                not want and line.startswith(name + " ")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            assert time.monotonic() < deadline, f"{url} never answered"
            time.sleep(0.2)


def test_metrics_and_health_move_during_a_run(telegram, redis_url, worker_env, tmp_path):
    tg = telegram
    bot_port, worker_port = free_port(), free_port()
    env = worker_env(redis_url)
    bot = subprocess.Popen([sys.executable, "-m", "bot.main"], env={**env, "PAINTBOT_METRICS_PORT": str(bot_port)},
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    workers = Workers({**env, "PAINTBOT_METRICS_PORT": str(worker_port)}, tmp_path)
    try:
        workers.start("metrics-worker")
        _wait_http(f"http://127.0.0.1:{bot_port}/healthz")
        _wait_http(f"http://127.0.0.1:{worker_port}/healthz")
        tg.wait_for("setMyCommands", timeout=30)
        assert _get(f"http://127.0.0.1:{bot_port}/healthz")[0] == 200
        assert _get(f"http://127.0.0.1:{worker_port}/healthz")[0] == 200
        _, before = _get(f"http://127.0.0.1:{bot_port}/metrics")
        assert _metric(before, "paintbot_jobs_enqueued_total", op="colorize") == 0

        chat = tg.private_chat(6001)
        tg.user_sends_photo(chat, gray_photo())
        tg.user_sends_document(chat, b"%PDF-1.4", file_name="x.pdf", mime_type="application/pdf")
        try:
            tg.wait_for("sendPhoto", timeout=60)
        except AssertionError as exc:
            import redis as _r
            keys = sorted(k.decode() for k in _r.Redis.from_url(redis_url).keys("*"))
            raise AssertionError(f"{exc}\nworker log:\n{workers.log('metrics-worker')[-1500:]}\nkeys: {keys}") from None

        _, bot_m = _get(f"http://127.0.0.1:{bot_port}/metrics")
        assert _metric(bot_m, "paintbot_jobs_enqueued_total", op="colorize") == 1
        assert _metric(bot_m, "paintbot_jobs_refused_total", reason="not_image") == 1
        assert _metric(bot_m, "paintbot_updates_total", kind="photo") == 2
        deadline = time.monotonic() + 10  # the job is counted just after its result is sent
        while _metric(w := _get(f"http://127.0.0.1:{worker_port}/metrics")[1], "paintbot_worker_jobs_total",
                      op="colorize", outcome="ok") < 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _metric(w, "paintbot_worker_jobs_total", op="colorize", outcome="ok") == 1
        assert _metric(w, "paintbot_worker_stage_seconds_count", stage="model") == 1
        assert _metric(w, "paintbot_worker_model_load_seconds") > 0
        assert "paintbot_queue_depth 0.0" in w
        # One structured line per job, without secrets.
        log = workers.log("metrics-worker")
        # torch.compile's kernels go beside the model cache (set before torch._dynamo writes its own default)
        assert f"compiled kernels kept in {tmp_path / 'cache' / 'inductor'}" in log
        line = next(ln for ln in log.splitlines() if "outcome=ok" in ln)
        assert "op=colorize" in line and "chat=6001" in line and "model=" in line and "job=pb-6001-" in line
        assert telegram.token not in log
    finally:
        workers.stop_all()
        bot.send_signal(signal.SIGTERM)
        bot.communicate(timeout=30)
    assert bot.returncode == 0


def test_webhook_mode_checks_the_secret(telegram, redis_url):
    tg = telegram
    port = free_port()
    url = f"http://127.0.0.1:{port}/tg-hook"
    env = {**os.environ, "TELEGRAM_BOT_TOKEN": tg.token, "PAINTBOT_TELEGRAM_API": tg.api_root, "REDIS_URL": redis_url,
           "PAINTBOT_WEBHOOK_URL": url, "PAINTBOT_WEBHOOK_SECRET": "s3cr3t-hook", "PAINTBOT_WEBHOOK_PORT": str(port)}
    bot = subprocess.Popen([sys.executable, "-m", "bot.main"], env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
    try:
        (hook,) = tg.wait_for("setWebhook", timeout=30)
        assert hook.params["url"] == url and hook.params["secret_token"] == "s3cr3t-hook"
        _wait_http(url)
        tg.user_sends_text(tg.private_chat(6100), "/help")
        body = json.dumps(tg.last_update()).encode()

        def post(secret):
            req = urllib.request.Request(url, body, {"Content-Type": "application/json",
                                                     "X-Telegram-Bot-Api-Secret-Token": secret})
            try:
                return urllib.request.urlopen(req, timeout=5).status
            except urllib.error.HTTPError as e:
                return e.code

        assert post("wrong") == 403
        assert not tg.calls("sendMessage")
        assert post("s3cr3t-hook") == 200
        (reply,) = tg.wait_for("sendMessage", timeout=30)
        assert "colour" in reply.params["text"]
        assert not tg.calls("getUpdates"), "no polling in webhook mode"
    finally:
        bot.send_signal(signal.SIGTERM)
        _, err = bot.communicate(timeout=30)
    assert bot.returncode == 0, err[-2000:]
