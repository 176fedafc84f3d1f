"""Languages, honest labels and reactions end to end: the real bot and worker, the fake Bot API, real Redis."""

from __future__ import annotations

import io
import time

from PIL import ExifTags, Image
from prometheus_client import REGISTRY

from bot.queue import JobQueue
from bot.contract.texts import LANGUAGES, render
from models.imageio import AI_SOURCE_TYPE
from tests.harness import gray_photo


def _wait(predicate, what: str, timeout: float = 10):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"waited {timeout} s for {what}"
        time.sleep(0.05)
    return value


def test_a_spanish_user_is_answered_in_spanish_from_queue_to_caption(service):
    tg = service.telegram
    chat = tg.private_chat(1101)
    tg.user_sends_photo(chat, gray_photo(200, 150), user=tg.user(1101, "María", language_code="es"))
    (status,) = tg.wait_for("sendMessage")
    assert status.params["text"] == "En cola: posición 1. Te enviaré el resultado aquí."
    service.wait_queued(1)
    service.run_worker()
    (working,) = tg.calls("editMessageText")
    assert working.params["text"] == "Coloreando…"
    (sent,) = tg.calls("sendPhoto")
    label = service.runtime.engines.defaults["colorize"].label
    assert sent.params["caption"] == f"Coloreada por IA: los colores son una suposición. Modelo: {label}"


def test_a_painting_is_named_in_the_users_language(service):
    tg = service.telegram
    chat = tg.private_chat(1103)
    tg.user_sends_photo(chat, gray_photo(90, 60), caption="/style vangogh", user=tg.user(1103, "Ivan", language_code="ru"))
    service.wait_queued(1)
    service.run_worker()
    (sent,) = tg.calls("sendPhoto")
    assert "«Звёздная ночь» (Винсент ван Гог)" in sent.params["caption"]
    assert service.runtime.engines.defaults["style"].label in sent.params["caption"]


def test_a_chosen_language_beats_the_apps_and_is_remembered(bot_service):
    tg = bot_service.telegram
    chat = tg.private_chat(1102)
    anna = tg.user(1102, "Anna", language_code="de")
    tg.user_sends_text(chat, "/language", user=anna)
    (pick,) = tg.wait_for("sendMessage")
    assert pick.params["text"] == "In welcher Sprache soll ich mit dir sprechen?"
    buttons = [b for row in pick.params["reply_markup"]["inline_keyboard"] for b in row]
    assert [b["text"] for b in buttons] == ["English", "Deutsch", "Español", "Português", "Русский"]
    keyboard = tg.bot_messages(1102)[-1]
    tg.user_presses_button(chat, keyboard["message_id"], "language:ru", user=anna)
    (done,) = tg.wait_for("editMessageText")
    assert done.params["text"] == "Готово: теперь я говорю с вами по-русски."
    assert JobQueue(bot_service.settings.redis_url, "paintbot").language(1102) == "ru"  # kept in Redis
    tg.user_sends_text(chat, "/help", user=anna)
    help_text = tg.wait_for("sendMessage", count=2)[1].params["text"]
    assert help_text == render("help", "ru") and help_text.startswith("Привет!")


def test_in_a_group_each_person_is_answered_in_their_own_language(bot_service):
    tg = bot_service.telegram
    group = tg.group_chat(-100901)
    jonas, joao = tg.user(1103, language_code="de"), tg.user(1104, language_code="pt-br")
    tg.user_sends_text(group, "/colorize", user=jonas)
    tg.wait_for("sendMessage")
    tg.user_sends_text(group, "/colorize", user=joao)
    hints = [c.params["text"] for c in tg.wait_for("sendMessage", count=2)]
    assert hints == [render("need_photo.colorize", "de"), render("need_photo.colorize", "pt")]
    tg.user_sends_text(group, "/language", user=jonas)
    tg.wait_for("sendMessage", count=3)
    keyboard = tg.bot_messages(group["id"])[-1]
    tg.user_presses_button(group, keyboard["message_id"], "language:es", user=joao)
    (notice,) = tg.wait_for("answerCallbackQuery")
    assert notice.params["text"] == "Listo: a partir de ahora te hablo en español."
    assert tg.message(group["id"], keyboard["message_id"])["reply_markup"], "the keyboard stays for the others"
    assert not tg.calls("editMessageText")


def test_the_command_menu_is_set_in_every_language(bot_service):
    menus = bot_service.telegram.commands
    assert set(menus) == {"", *LANGUAGES} - {"en"}  # "": English, for every language we lack
    for code, menu in menus.items():
        lang = code or "en"
        assert [(c["command"], c["description"]) for c in menu] == [
            (c, render(f"command.{c}", lang))
            for c in ("colorize", "restore", "hints", "style", "styles", "language", "forget", "help")]


def test_a_result_file_says_ai_made_it_and_keeps_the_camera_but_not_the_place(service):
    tg = service.telegram
    chat = tg.private_chat(1105)
    exif = Image.Exif()
    exif[ExifTags.Base.Make], exif[ExifTags.Base.Model] = "Leica", "M3"
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = "1958:05:01 12:00:00"
    exif.get_ifd(ExifTags.IFD.GPSInfo)[ExifTags.GPS.GPSLatitude] = (41.0, 53.0, 24.0)
    photo = io.BytesIO()
    Image.open(io.BytesIO(gray_photo(240, 160))).save(photo, "JPEG", exif=exif)
    tg.user_sends_document(chat, photo.getvalue(), file_name="grandpa.jpg", mime_type="image/jpeg")
    tg.wait_for("sendMessage")
    service.wait_queued(1)
    service.run_worker()
    (sent,) = tg.calls("sendDocument")
    engine = service.runtime.engines.defaults["colorize"]
    assert sent.params["caption"] == render("caption.colorize", "en", engine=engine.label)
    result = Image.open(io.BytesIO(tg.sent_file(sent)))
    assert result.getxmp()["xmpmeta"]["RDF"]["Description"]["DigitalSourceType"] == AI_SOURCE_TYPE
    kept = result.getexif()
    assert (kept[ExifTags.Base.Make], kept[ExifTags.Base.Model]) == ("Leica", "M3")
    assert kept.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] == "1958:05:01 12:00:00"
    assert ExifTags.IFD.GPSInfo not in kept and not kept.get_ifd(ExifTags.IFD.GPSInfo)


def _reactions(engine: str) -> dict[tuple[str, str], float]:
    return {(reaction, change): REGISTRY.get_sample_value("paintbot_result_reactions_total", {
        "engine": engine, "reaction": reaction, "change": change}) or 0.0
        for reaction in ("like", "dislike") for change in ("added", "removed")}


def test_thumbs_on_results_are_counted_for_the_engine_that_made_them(service):
    tg = service.telegram
    chat = tg.private_chat(1106)
    photo = tg.user_sends_photo(chat, gray_photo(160, 120))
    tg.wait_for("sendMessage")
    service.wait_queued(1)
    service.run_worker()
    (result,) = [m for m in tg.bot_messages(1106) if "photo" in m]
    engine = service.runtime.engines.defaults["colorize"].name
    before = _reactions(engine)

    def moved() -> dict:
        now = _reactions(engine)
        return {k: now[k] - before[k] for k in now if now[k] != before[k]}

    tg.user_reacts(chat, photo["message_id"], ["👍"])  # the user's own photo: not a result, not counted
    tg.user_reacts(chat, result["message_id"], ["👍"])
    assert _wait(moved, "the 👍 to be counted") == {("like", "added"): 1}
    tg.user_reacts(chat, result["message_id"], ["👎"], old=["👍"])  # changed their mind
    _wait(lambda: len(moved()) == 3, "the change to be counted")
    assert moved() == {("like", "added"): 1, ("like", "removed"): 1, ("dislike", "added"): 1}
