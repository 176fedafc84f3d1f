"""Every record the bot and the workers exchange reads what another release wrote, both ways.

During a rolling upgrade the bot is new while some workers are old (and after a rollback, the other way
round), and records outlive both: a follow-up record lasts a week. So each reader of bot/contract takes a
record with a field it does not know (a newer release added it) and a record missing a field (an older
release lacked it), here through a real Redis where the record lives there. The job itself is covered by
tests/test_job_contract.py through a real worker; its bare reader is pinned here too.
"""

from __future__ import annotations

import json

import pytest
import redis

from bot.contract import cache, followups, keys, records
from bot.contract.job import AlbumItem, Job, Op
from bot.contract.options import ColorizeOptions, EngineInfo, StyleOptions, Vocabulary
from bot.requests import Image


@pytest.fixture
def conn(redis_url):
    return redis.Redis.from_url(redis_url)


def test_a_job_reads_with_an_extra_and_without_a_field():
    newer = {"op": "colorize", "chat_id": 5, "request_id": 7, "reply_to": 7, "file_id": "F", "as_document": False,
             "topic": 42, "options": {"intensity": 120, "tone": "sepia", "album": [
                 {"message_id": 7, "file_id": "F", "width": 800}, {"message_id": 8, "file_id": "G"}]}}
    job = Job.from_dict(newer)
    assert job.op is Op.COLORIZE and job.options == ColorizeOptions(None, 120)
    assert job.album == (AlbumItem(7, "F"), AlbumItem(8, "G")), "an album item's unknown field is ignored"
    older = {"op": "styles", "chat_id": 5, "request_id": 9, "reply_to": 9}  # no file, no as_document, no options
    job = Job.from_dict(older)
    assert job.op is Op.STYLES and job.file_id is None and job.as_document is False and job.options is None
    assert Job.from_dict(job.to_dict()) == job
    with pytest.raises(ValueError, match="unknown operation"):
        Job.from_dict({**older, "op": "animate"})  # an operation this release cannot run is no job of its own


def test_op_is_the_string_the_queue_carries():
    assert json.dumps(Job(op=Op.STYLE, chat_id=1, request_id=2, reply_to=2).to_dict()["op"]) == '"style"'
    assert Job(op="compare", chat_id=1, request_id=2, reply_to=2).op is Op.COMPARE
    assert Op.COLORIZE.family == "colorize" and Op.STYLE.family == "style"
    assert Op.STYLES.family is None and Op.COMPARE.family is None


def _followup() -> followups.Followup:
    job = Job(op=Op.COLORIZE, chat_id=5, request_id=7, reply_to=7, file_id="SRC", as_document=True,
              file_name="grandma.png", options=ColorizeOptions(None, 150), file_unique_id="U-SRC")
    return followups.Followup.of(job, "eccv16", "RES", "U-RES")


def test_a_followup_record_reads_with_an_extra_and_without_a_field(conn):
    record = _followup()
    assert record.options == {"engine": "eccv16", "intensity": 150} and record.file_name == "grandma.png"
    rid = followups.new_id()
    followups.remember(conn, rid, record, ttl=60)
    assert conn.exists(followups.Followup.key_for(rid)) and followups.Followup.key_for(rid) == keys.followup(rid)
    assert followups.recall(conn, rid) == record

    newer = {**json.loads(record.to_json()), "chat_id": 5, "made_at": 1765000000}  # fields a later release adds
    conn.set(keys.followup(rid), json.dumps(newer))
    assert followups.recall(conn, rid) == record, "a newer release's record is not read as expired"

    older = {k: v for k, v in json.loads(record.to_json()).items() if k not in ("album", "album_results",
                                                                                "result_unique_id", "options")}
    conn.set(keys.followup(rid), json.dumps(older))
    read = followups.recall(conn, rid)
    assert read is not None and read.album is None and read.result_unique_id is None and read.options == {}
    assert read.source_file_id == "SRC" and read.engine == "eccv16"
    assert read.chat_id == 5 and read.belongs_to(5) and not read.belongs_to(6), "a record answers its own chat"

    previous = {k: v for k, v in json.loads(record.to_json()).items() if k != "chat_id"}  # the previous release's
    conn.set(keys.followup(rid), json.dumps(previous))
    read = followups.recall(conn, rid)
    assert read is not None and read.chat_id is None and read.source_file_id == "SRC"
    assert not read.belongs_to(5), "no chat id: no chat's taps are answered from it (taken as expired)"

    for junk in ('{"engine": "eccv16"}', "[1, 2]", "{not json", '"text"'):
        conn.set(keys.followup(rid), junk)
        assert followups.recall(conn, rid) is None, junk  # nothing a tap could act on: "send the photo again"


def test_an_album_followup_keeps_its_pictures_in_order():
    job = Job(op=Op.STYLE, chat_id=5, request_id=7, reply_to=7, file_id="F1", options=StyleOptions("vangogh"),
              album=(AlbumItem(7, "F1"), AlbumItem(8, "F2", "b.png")))
    record = followups.Followup.of(job, "adain", "R1", "U1", job.album,
                                   [AlbumItem(20, "R1"), AlbumItem(21, "R2", "b.png")])
    back = followups.Followup.from_json(record.to_json())
    assert back == record
    assert [AlbumItem.from_dict(d) for d in back.album_results] == [AlbumItem(20, "R1"), AlbumItem(21, "R2", "b.png")]


def test_a_cached_result_reads_with_an_extra_and_without_a_field(conn):
    key = cache.key("U1", Op.COLORIZE, ColorizeOptions(), "eccv16", "w1")
    assert key.startswith(keys.cached_result(""))
    conn.set(key, json.dumps({"file_id": "FILE", "document": True, "engine": "eccv16", "colorized_first": False,
                              "width": 640, "made_by": "worker-3"}))
    assert cache.lookup(conn, key) == cache.Cached("FILE", True, "eccv16")
    conn.set(key, json.dumps({"file_id": "FILE", "engine": "eccv16"}))  # no document, no colorized_first
    assert cache.lookup(conn, key) == cache.Cached("FILE", False, "eccv16")


def test_an_album_picture_record_reads_with_an_extra_and_without_a_field():
    img = Image("F", 1234, True, "a.png", "U")
    assert Image.from_dict(img.to_dict()) == img
    assert Image.from_dict({**img.to_dict(), "width": 800}) == img
    assert Image.from_dict({"file_id": "F"}) == Image("F", None, False)
    with pytest.raises(KeyError):
        Image.from_dict({"file_size": 3})


def test_published_engines_and_presets_read_across_releases(conn):
    adain = EngineInfo("adain", "style", "AdaIN", ("fast",), default=True, weights="w")
    records.publish(conn, [adain], ["vangogh", "munch"])
    assert records.published(conn) == Vocabulary(("vangogh", "munch"), (adain,))
    conn.hset(keys.ENGINES, "ddcolor", json.dumps({"name": "ddcolor", "family": "colorize", "label": "DDColor",
                                                   "speed": "fast"}))  # newer: an extra field, older: no weights
    conn.hset(keys.ENGINES, "junk", "{not json")
    vocabulary = records.published(conn)
    assert [e.name for e in vocabulary.engines] == ["adain", "ddcolor"], "a record it cannot read is skipped"
    assert vocabulary.info("ddcolor").weights is None and vocabulary.styles == ("vangogh", "munch")


def test_with_nothing_published_a_style_name_is_taken_on_trust():
    """Old workers publish no presets: `/style NAME` still parses, the worker checks the name."""
    nothing = Vocabulary()
    assert StyleOptions.parse(["vangogh", "60"], nothing) == StyleOptions("vangogh", 0.6)
    engines_only = Vocabulary((), (EngineInfo("adain", "style", "AdaIN", ("fast",)),))
    assert StyleOptions.parse(["fast", "munch"], engines_only) == StyleOptions("munch", 1.0, False, "adain")
    known = Vocabulary(("vangogh",), engines_only.engines)
    assert StyleOptions.parse(["vangogh"], known).style == "vangogh"
    with pytest.raises(ValueError):
        StyleOptions.parse(["munchh"], known)


def test_results_engine_and_release_go_through_the_map(conn):
    records.record_result(conn, -100, 55, "eccv16")
    assert conn.get(keys.result_engine(-100, 55)) == b"eccv16" and records.result_engine(conn, -100, 55) == "eccv16"
    job = Job(op=Op.COLORIZE, chat_id=5, request_id=7, reply_to=7, user_id=99)
    conn.zadd(keys.inflight(99), {job.job_id: 1})
    records.release(conn, job)
    assert conn.zcard(keys.inflight(99)) == 0
