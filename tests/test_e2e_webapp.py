"""The Mini App "Pick colours" in a real browser (issue 27): headless Chromium (Debian's chromium and
chromium-driver) driven by Selenium through the real page, against the real web server (bot/web/server.py), the real
bot, a real `paintbot-worker` process with the stand-in SIGGRAPH17 weights, real Redis and the fake Bot API.
Telegram's script is a local stand-in (window.Telegram.WebApp with initData signed by the test token, the theme,
the user's language), served from its own address as telegram.org serves the real one.

One browser for the module; two tests: the whole way (button under a result, page, taps, previews, Send, the
result in the chat with the hints applied), and a forged initData (an error page, no API beyond the refusal)."""

from __future__ import annotations

import http.server
import io
import json
import shutil
import threading
import time
import urllib.parse
from pathlib import Path

import numpy as np
import pytest
import redis
from PIL import Image

from bot.contract.keys import IDLE_WORKERS
from bot.contract.settings import Settings
from tests.harness import BotThread, WebThread, Workers, gray_photo, init_data

ARTEFACTS = Path(__file__).with_name("artefacts")
WEBAPP_URL = "https://paint.example.test/app"  # what the button says; the browser opens the local server instead
DARK = {"bg_color": "#17212b", "text_color": "#f5f5f5", "hint_color": "#708499", "button_color": "#5288c1",
        "button_text_color": "#ffffff", "secondary_bg_color": "#232e3c"}


def _chromium() -> tuple[str, str]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.skip("!!! NO BROWSER: the Mini App's browser tests did NOT run. Install Debian's chromium and "
                    "chromium-driver (apt-get install -y chromium chromium-driver; .ci/run does it as root) !!!")
    return chromium, driver


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = _chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=390,844", "--lang=en"):  # a phone's screen
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    session = webdriver.Chrome(options=options, service=Service(driver))
    session.set_page_load_timeout(30)
    yield session
    session.quit()


class TelegramScript:
    """The stand-in of https://telegram.org/js/telegram-web-app.js: `webapp` becomes window.Telegram.WebApp."""

    def __init__(self):
        self.webapp: dict = {}
        script = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                body = ("(function(){var w=" + json.dumps(script.webapp) + ";"
                        "w.ready=function(){window.__tgReady=true};w.expand=function(){};"
                        "w.close=function(){window.__tgClosed=true};w.onEvent=function(){};"
                        "w.HapticFeedback={notificationOccurred:function(){}};"
                        "w.MainButton={setText:function(){},onClick:function(){},show:function(){},hide:function(){}};"
                        "window.Telegram={WebApp:w};})();").encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/javascript")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/js/telegram-web-app.js"

    def sign_in(self, token: str, user: dict, start_param: str | None = None, theme: dict | None = None,
                scheme: str = "light", forged: bool = False) -> None:
        extra = {"start_param": start_param} if start_param else {}
        data = init_data(token, user, **extra)
        if forged:  # the user's name changed after Telegram signed it
            pairs = dict(urllib.parse.parse_qsl(data))
            data = urllib.parse.urlencode({**pairs, "user": pairs["user"].replace(user["first_name"], "Mallory")})
        self.webapp = {"initData": data, "initDataUnsafe": {"user": user, **extra}, "themeParams": theme or {},
                       "colorScheme": scheme, "version": "7.10", "platform": "android"}

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _wait(cond, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := cond()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


def _preview_sum(browser) -> float:
    """A fingerprint of the preview as shown (its pixels drawn on a canvas)."""
    return browser.execute_script(
        "const i=document.getElementById('preview');const c=document.createElement('canvas');c.width=64;c.height=64;"
        "const g=c.getContext('2d');g.drawImage(i,0,0,64,64);const d=g.getImageData(0,0,64,64).data;"
        "let s=0;for(let k=0;k<d.length;k+=4){s+=d[k]*3+d[k+1]*5+d[k+2]*7;}return s;")


def _version(browser) -> int:
    return int(browser.find_element("id", "preview").get_attribute("data-version"))


def _tap(browser, fx: float, fy: float) -> None:
    """A tap at (fx, fy) of the photo as shown (fractions of its width and height)."""
    from selenium.webdriver.common.action_chains import ActionChains

    photo = browser.find_element("id", "photo")
    w, h = photo.size["width"], photo.size["height"]
    ActionChains(browser).move_to_element_with_offset(photo, int((fx - 0.5) * w), int((fy - 0.5) * h)).click().perform()


def _points(browser) -> list[tuple[int, ...]]:
    return [(int(p.get_attribute("data-x")), int(p.get_attribute("data-y")),
             *map(int, p.get_attribute("data-rgb").split(","))) for p in browser.find_elements("css selector", ".point")]


def _move_remove_compare_reset(browser, points) -> None:
    """A third point is placed, dragged (it moves, the preview follows with three hints) and removed; the
    before/after slider uncovers the photo; Reset clears every point and Undo brings them back as they were."""
    from selenium.webdriver.common.action_chains import ActionChains

    _tap(browser, 0.5, 0.85)
    _wait(lambda: len(browser.find_elements("css selector", ".point")) == 3, 10, "the third point")
    _wait(lambda: browser.find_element("id", "preview").get_attribute("data-hints") == "3", 30, "three hints")
    x, y = _points(browser)[2][:2]
    seen = _version(browser)
    third = browser.find_elements("css selector", ".point")[2]
    ActionChains(browser).move_to_element(third).click_and_hold().move_by_offset(40, -30).release().perform()
    _wait(lambda: _points(browser)[2][0] > x + 10 and _points(browser)[2][1] < y - 10, 10, "the point to move")
    _wait(lambda: _version(browser) > seen and browser.find_element("id", "preview").get_attribute("data-hints") == "3",
          30, "the preview after the move")
    browser.find_element("id", "remove").click()  # the dragged point is the selected one
    _wait(lambda: browser.find_element("id", "preview").get_attribute("data-hints") == "2", 30, "two hints again")
    assert _points(browser) == points
    browser.execute_script("const c=document.getElementById('compare');c.value='30';c.dispatchEvent(new Event('input'));")
    assert "70%" in browser.find_element("id", "preview").value_of_css_property("clip-path")
    browser.execute_script("const c=document.getElementById('compare');c.value='100';c.dispatchEvent(new Event('input'));")
    browser.find_element("id", "reset").click()
    _wait(lambda: not browser.find_elements("css selector", ".point"), 10, "Reset to clear the points")
    _wait(lambda: browser.find_element("id", "preview").get_attribute("data-hints") == "0", 30, "the preview without hints")
    browser.find_element("id", "undo").click()
    _wait(lambda: browser.find_element("id", "preview").get_attribute("data-hints") == "2", 30, "Undo to bring them back")
    assert _points(browser) == points


def _ab(img: Image.Image, points) -> np.ndarray:
    from skimage.color import rgb2lab

    lab = rgb2lab(np.asarray(img.convert("RGB")))
    return np.array([lab[y, x, 1:] for x, y in points])


@pytest.fixture
def live(telegram, redis_url, worker_env, standin_weights, tmp_path):
    """The bot, one worker process running SIGGRAPH17 (stand-in weights) and the web server, with the Mini App on."""
    conn = redis.Redis.from_url(redis_url)
    settings = Settings(token=telegram.token, redis_url=redis_url, telegram_api=telegram.api_root,
                        webapp_url=WEBAPP_URL)
    script = TelegramScript()
    env = {**worker_env(redis_url), "PAINTBOT_WEBAPP_URL": WEBAPP_URL, "PAINTBOT_COLORIZE_MODEL": "siggraph17",
           "PAINTBOT_COLORIZE_WEIGHTS": str(standin_weights["siggraph17"])}
    workers = Workers(env, tmp_path)
    bot = BotThread(settings).start()
    web = WebThread(settings, telegram_js=script.url).start()
    try:
        workers.start("hints-1")
        _wait(lambda: conn.zcard(IDLE_WORKERS) == 1, 180, "the worker to wait for jobs")
        yield telegram, conn, web, script
    finally:
        web.stop()
        bot.stop()
        workers.stop_all()
        script.close()


def test_pick_colours_from_a_result_to_the_chat(live, browser, standin_weights, tmp_path):
    tg, conn, web, script = live
    user = tg.user(4711, first_name="Ada", language_code="de")
    chat = tg.private_chat(4711)
    photo = gray_photo(320, 240, seed=7)
    sent = tg.user_sends_photo(chat, photo, user=user)
    (result,) = tg.wait_for("sendPhoto", timeout=90, chat_id=chat["id"])

    # "Pick colours" under the colourised result: a web_app button to the Mini App's address with its grant token.
    rows = json.loads(result.params["reply_markup"])["inline_keyboard"] if isinstance(
        result.params["reply_markup"], str) else result.params["reply_markup"]["inline_keyboard"]
    (button,) = [b for row in rows for b in row if "web_app" in b]
    assert button["text"] == "Farben wählen"
    address = urllib.parse.urlsplit(button["web_app"]["url"])
    assert f"{address.scheme}://{address.netloc}{address.path}" == WEBAPP_URL
    (token,) = urllib.parse.parse_qs(address.query)["t"]

    script.sign_in(tg.token, user, theme=DARK, scheme="dark")
    browser.get(f"{web.url}/?t={token}")
    _wait(lambda: browser.execute_script("return document.getElementById('app').dataset.ready === '1'"), 30,
          "the page to show its photo")
    _wait(lambda: _version(browser) >= 1, 60, "the first preview (no hints)")
    # The theme and the language: Telegram's dark colours as CSS variables, the words in German.
    assert browser.execute_script("return getComputedStyle(document.body).backgroundColor") == "rgb(23, 33, 43)"
    assert browser.execute_script("return document.documentElement.dataset.theme") == "dark"
    assert browser.find_element("id", "send").text == "In den Chat senden"
    assert browser.execute_script("return document.documentElement.lang") == "de"
    assert browser.execute_script("return window.__tgReady") is True
    natural = browser.execute_script("const p=document.getElementById('photo');return [p.naturalWidth,p.naturalHeight]")
    assert natural == [320, 240]  # the photo itself, through the server's signed address

    before = _preview_sum(browser)
    # First point: a tap, then the second suggested colour.
    _tap(browser, 0.25, 0.3)
    _wait(lambda: browser.find_elements("css selector", "#swatches .swatch"), 30, "the suggested colours")
    swatches = browser.find_elements("css selector", "#swatches .swatch")
    assert len(swatches) >= 2
    seen = _version(browser)
    swatches[1].click()
    _wait(lambda: _version(browser) > seen and browser.find_element("id", "preview").get_attribute("data-hints") == "1",
          30, "the preview with one hint")
    with_one = _preview_sum(browser)
    assert with_one != before, "the preview did not change with a hint"
    # Second point: a tap elsewhere, any colour from the picker.
    _tap(browser, 0.7, 0.65)
    _wait(lambda: len(browser.find_elements("css selector", ".point")) == 2, 10, "the second point")
    browser.execute_script("const c=document.getElementById('colour');c.value='#d03020';"
                           "c.dispatchEvent(new Event('change'));")
    _wait(lambda: browser.find_element("id", "preview").get_attribute("data-hints") == "2" and
          browser.find_elements("css selector", ".point")[1].get_attribute("data-rgb") == "208,48,32", 30,
          "the preview with two hints")
    assert browser.find_element("id", "count").text == "2 Punkte"
    # Undo takes the colour back, and the page's state follows; the colour is chosen again.
    browser.find_element("id", "undo").click()
    assert browser.find_elements("css selector", ".point")[1].get_attribute("data-rgb") != "208,48,32"
    browser.execute_script("const c=document.getElementById('colour');c.value='#d03020';"
                           "c.dispatchEvent(new Event('change'));")
    points = [(int(p.get_attribute("data-x")), int(p.get_attribute("data-y")),
               *map(int, p.get_attribute("data-rgb").split(","))) for p in browser.find_elements("css selector", ".point")]
    assert points[1][2:] == (208, 48, 32)
    assert 70 <= points[0][0] <= 90 and 62 <= points[0][1] <= 82  # where the tap was, in full-size pixels
    _move_remove_compare_reset(browser, points)
    ARTEFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTEFACTS / "webapp.png"))

    browser.find_element("id", "send").click()
    _wait(lambda: browser.execute_script("return document.getElementById('app').dataset.sent === '1'"), 20,
          "the page to say it was sent")
    assert browser.find_element("id", "status").text.startswith("Gesendet")
    (answer,) = tg.wait_for(lambda c: c.method == "sendPhoto" and "2 von dir gewählten Farben" in
                            (c.params.get("caption") or ""), timeout=90, chat_id=chat["id"])
    assert answer.reply_to == sent["message_id"]
    got = Image.open(io.BytesIO(tg.sent_file(answer)))
    assert got.size == (320, 240)  # full resolution

    # The hints were applied: at the hint points the result has the ab the network gives for those hints.
    from models import engines, imageio
    from models.colorize.hints import Hint
    from models.config import ModelConfig

    engine = engines.load("siggraph17", "colorize", __import__("torch").device("cpu"), ModelConfig(
        device="cpu", cache_dir=tmp_path / "cache",
        weight_overrides={"siggraph17-df00044c.pth": standin_weights["siggraph17"]}))
    img = imageio.decode(photo)
    hints = [Hint(x, y, (r, g, b)) for x, y, r, g, b in points]
    # Both through the worker's JPEG (4:2:0 chroma moves a single pixel's ab by tens): then equal up to rounding.
    expected, plain = (Image.open(io.BytesIO(imageio.encode(engine.colorize_hints(img, h), "JPEG", quality=92)))
                       for h in (hints, []))
    at = [(x, y) for x, y, *_ in points]
    off = np.abs(_ab(got, at) - _ab(expected, at)).max()
    assert off < 1.5, off
    assert np.abs(_ab(expected, at) - _ab(plain, at)).max() > 5, "the hints changed nothing: no proof they were applied"


def test_a_forged_init_data_shows_an_error_page_and_asks_nothing_more(telegram, redis_url, browser):
    conn = redis.Redis.from_url(redis_url)
    settings = Settings(token=telegram.token, redis_url=redis_url, telegram_api=telegram.api_root,
                        webapp_url=WEBAPP_URL)
    script = TelegramScript()
    web = WebThread(settings, telegram_js=script.url).start()
    try:
        user = telegram.user(4712, first_name="Bob", language_code="en")
        script.sign_in(telegram.token, user, forged=True)
        browser.get(f"{web.url}/?t={'A' * 22}")
        _wait(lambda: browser.find_element("id", "error").is_displayed(), 20, "the error page")
        assert "opened from the bot's button" in browser.find_element("id", "error-text").text
        assert not browser.find_element("id", "app").is_displayed()
        asked = browser.execute_script(
            "return performance.getEntriesByType('resource').map(e => new URL(e.name).pathname)")
        assert [p for p in asked if p.startswith("/api/")] == ["/api/session"]  # refused there; nothing after
        assert not telegram.calls("getFile") and not conn.keys("rq:queue:*")
        # Opened outside Telegram (no initData at all): the page asks the server nothing.
        script.webapp = {"initData": "", "initDataUnsafe": {}, "themeParams": {}, "colorScheme": "light"}
        browser.get(f"{web.url}/?t={'A' * 22}")
        _wait(lambda: browser.find_element("id", "error").is_displayed(), 20, "the error page")
        asked = browser.execute_script(
            "return performance.getEntriesByType('resource').map(e => new URL(e.name).pathname)")
        assert not [p for p in asked if p.startswith("/api/")]
    finally:
        web.stop()
        script.close()
