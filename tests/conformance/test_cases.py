"""The Python client's pure tracker against the language-neutral conformance cases.

Every `conformance/cases/*.json` (format: conformance/README.md) is validated, then
driven through `ticker.client.tracker.Tracker`: WebSocket frames decoded with ticker's
codec, SSE text with the client's own event-stream decoder; after each step the
updates, resync, refusal, resume position and the exact set of held topic states are
compared with what the case says a correct client holds.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgpack
import pytest

from ticker.client.event_stream import SseDecoder, StreamEnd
from ticker.client.tracker import Tracker
from ticker.client.updates import Update
from ticker.core.codec import BOOK_SIDES, NANOS_FIELDS, decode_frame, json_data
from ticker.core.messages import ServerMessage

ROOT = Path(__file__).resolve().parents[2]
CASES_DIR = ROOT / "conformance" / "cases"
CASE_FILES = sorted(CASES_DIR.glob("*.json"))
NOW_NS = 1_763_800_000_000_000_000
"""The receive time handed to the tracker: it only feeds latency, which no case checks."""

POSITION = re.compile(r"^[0-9]+-[0-9]+$")
KINDS = {"snapshot", "delta", "reset"}


class CaseError(AssertionError):
    """A case file does not follow the format."""


# -- validation ---------------------------------------------------------------------------


def _require(ok: bool, where: str, what: str) -> None:
    if not ok:
        raise CaseError(f"{where}: {what}")


def _keys(
    obj: object, where: str, required: set[str], optional: frozenset[str] = frozenset()
) -> None:
    _require(isinstance(obj, dict), where, "must be an object")
    assert isinstance(obj, dict)
    missing = required - obj.keys()
    unknown = obj.keys() - required - optional
    _require(not missing, where, f"missing keys {sorted(missing)}")
    _require(not unknown, where, f"unknown keys {sorted(unknown)}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _position(value: object, where: str, *, nullable: bool) -> None:
    if value is None:
        _require(nullable, where, "must be a position, not null")
        return
    _require(
        isinstance(value, str) and bool(POSITION.match(value)), where, f"bad position {value!r}"
    )


def _decimal_free_of_null(data: object, where: str) -> None:
    _require(isinstance(data, dict), where, "data must be an object")
    assert isinstance(data, dict)
    for name, value in data.items():
        _require(value is not None, where, f"field {name!r} is null (write it absent)")
        if name in BOOK_SIDES:
            ok = isinstance(value, list) and all(
                isinstance(level, list)
                and len(level) == 2
                and all(isinstance(x, str) for x in level)
                for level in value
            )
            _require(ok, where, f"{name} must be a list of [price, size] decimal strings")
        elif name in NANOS_FIELDS:
            _require(isinstance(value, str), where, f"{name} must be a decimal string")


def _validate_expect(expect: object, where: str) -> None:
    _keys(expect, where, {"updates", "resync", "refusal", "resume", "state"})
    assert isinstance(expect, dict)
    _require(isinstance(expect["updates"], list), where, "updates must be a list")
    for i, update in enumerate(expect["updates"]):
        at = f"{where}.updates[{i}]"
        _keys(update, at, {"kind", "topic", "seq", "position", "skipped", "loss"})
        _require(update["kind"] in KINDS, at, f"kind must be one of {sorted(KINDS)}")
        _require(isinstance(update["topic"], str), at, "topic must be a string")
        _require(_is_int(update["seq"]) and update["seq"] >= 0, at, "seq must be an int >= 0")
        _position(update["position"], at, nullable=False)
        _require(_is_int(update["skipped"]) and update["skipped"] >= 0, at, "skipped: int >= 0")
        loss = update["loss"]
        if loss is not None:
            _keys(loss, f"{at}.loss", {"after", "until", "reason"})
            _position(loss["after"], f"{at}.loss.after", nullable=True)
            _position(loss["until"], f"{at}.loss.until", nullable=False)
            _require(isinstance(loss["reason"], str), at, "loss.reason must be a string")
        _require((loss is not None) == (update["kind"] == "reset"), at, "loss iff kind reset")
    _require(isinstance(expect["resync"], bool), where, "resync must be a boolean")
    refusal = expect["refusal"]
    _require(refusal is None or _is_int(refusal), where, "refusal must be an int or null")
    _position(expect["resume"], f"{where}.resume", nullable=True)
    _require(isinstance(expect["state"], dict), where, "state must be an object")
    for topic, held in expect["state"].items():
        at = f"{where}.state[{topic!r}]"
        _keys(held, at, {"seq", "data"})
        _require(_is_int(held["seq"]) and held["seq"] >= 0, at, "seq must be an int >= 0")
        _decimal_free_of_null(held["data"], at)


def validate(case: object, stem: str) -> None:
    """Check a case against the format; raise CaseError naming what is wrong.

    Raises:
        CaseError: a missing or unknown key, a wrong type, a step out of place.
    """
    _keys(case, stem, {"name", "about", "transport", "steps"})
    assert isinstance(case, dict)
    _require(case["name"] == stem, stem, f"name {case['name']!r} differs from the file name")
    _require(isinstance(case["about"], str) and bool(case["about"]), stem, "about: a sentence")
    transport = case["transport"]
    _require(transport in ("ws", "sse"), stem, "transport must be 'ws' or 'sse'")
    steps = case["steps"]
    _require(isinstance(steps, list) and bool(steps), stem, "steps must be a non-empty list")
    must_connect = True
    for i, step in enumerate(steps):
        where = f"{stem} step {i}"
        _require(isinstance(step, dict), where, "must be an object")
        if "connect" in step:
            _keys(step, where, {"connect"})
            _keys(step["connect"], f"{where}.connect", {"resume"})
            _position(step["connect"]["resume"], f"{where}.connect.resume", nullable=True)
            must_connect = False
            continue
        _require(not must_connect, where, "must be a connect (first step, or after a resync)")
        _keys(step, where, {transport}, frozenset({"note", "expect"}))
        body = step[transport]
        _require(isinstance(body, str), where, f"{transport} must be a string")
        if transport == "ws":
            try:
                base64.b64decode(body, validate=True)
            except binascii.Error as exc:
                raise CaseError(f"{where}: ws is not base64: {exc}") from None
        _require(isinstance(step.get("note", ""), str), where, "note must be a string")
        if "expect" in step:
            _validate_expect(step["expect"], f"{where}.expect")
            must_connect = step["expect"]["resync"]


# -- driving the tracker ----------------------------------------------------------------


def _render_data(data: dict[str, Any]) -> dict[str, Any]:
    """A state in the JSON form: nanos as exact decimal strings; null fields dropped
    (null means the value is gone, README "Comparing")."""
    return {name: value for name, value in json_data(data).items() if value is not None}


def _render_update(update: Update) -> dict[str, Any]:
    loss = update.loss
    return {
        "kind": update.kind.value,
        "topic": update.topic,
        "seq": update.seq,
        "position": str(update.position),
        "skipped": update.skipped,
        "loss": None
        if loss is None
        else {
            "after": None if loss.after is None else str(loss.after),
            "until": str(loss.until),
            "reason": loss.reason,
        },
    }


def _held(tracker: Tracker) -> dict[str, Any]:
    return {
        topic: {"seq": tracker.mirror.seq(topic), "data": _render_data(tracker.mirror.data(topic))}
        for topic in sorted(tracker.topics())
    }


def _resume(tracker: Tracker) -> str | None:
    position = tracker.resume_position()
    return None if position is None else str(position)


def _units(step: dict[str, Any], decoder: SseDecoder | None) -> list[list[ServerMessage]]:
    if "ws" in step:
        return [decode_frame(base64.b64decode(step["ws"]))]
    assert decoder is not None
    units = []
    for item in decoder.feed(step["sse"].encode("utf-8")):
        assert not isinstance(item, StreamEnd), "no case ends the stream"
        units.append(item)
    return units


def run_case(case: dict[str, Any]) -> None:
    """Drive one case through a fresh tracker; fail naming the case, step and field."""
    name = case["name"]
    tracker = Tracker()
    decoder: SseDecoder | None = None
    for i, step in enumerate(case["steps"]):
        where = f"{name} step {i}"
        if "connect" in step:
            tracker.connected()
            decoder = SseDecoder() if case["transport"] == "sse" else None
            got_resume = _resume(tracker)
            want_resume = step["connect"]["resume"]
            assert got_resume == want_resume, (
                f"{where} (connect): subscribes with {got_resume!r}, the case says {want_resume!r}"
            )
            continue
        updates: list[dict[str, Any]] = []
        resync = False
        refusal: int | None = None
        for unit in _units(step, decoder):
            assert not resync and refusal is None, f"{where}: a unit after the connection ended"
            result = tracker.receive(unit, NOW_NS)
            updates += [_render_update(u) for u in result.updates]
            resync = result.resync
            refusal = None if result.refusal is None else result.refusal.code
        expect = step.get("expect")
        if expect is None:
            continue
        got = {
            "updates": updates,
            "resync": resync,
            "refusal": refusal,
            "resume": _resume(tracker),
            "state": _held(tracker),
        }
        for key in ("updates", "resync", "refusal", "resume", "state"):
            want = expect[key]
            if key == "state":
                want = dict(sorted(want.items()))
            assert got[key] == want, (
                f"{where} ({step.get('note', key)[:120]}): {key} differs\n"
                f"  got:  {json.dumps(got[key])}\n  want: {json.dumps(want)}\n"
                f"  case: {case['about']}"
            )


def _load(path: Path) -> dict[str, Any]:
    case = json.loads(path.read_text(encoding="utf-8"))
    validate(case, path.stem)
    assert isinstance(case, dict)
    return case


# -- the tests ----------------------------------------------------------------------------


def test_the_suite_is_not_empty() -> None:
    assert len(CASE_FILES) >= 20, f"only {len(CASE_FILES)} cases in {CASES_DIR}"
    assert any(_load(p)["transport"] == "sse" for p in CASE_FILES)
    assert any(p.stem.startswith("recorded-") for p in CASE_FILES), "no recorded case"


@pytest.mark.parametrize("path", CASE_FILES, ids=lambda p: p.stem)
def test_case_file_follows_the_format(path: Path) -> None:
    _load(path)


@pytest.mark.parametrize("path", CASE_FILES, ids=lambda p: p.stem)
def test_tracker_passes_case(path: Path) -> None:
    run_case(_load(path))


def test_hand_built_cases_match_their_builder() -> None:
    """The committed files are what conformance/build_cases.py writes (no hand edits
    that the builder would undo, no stale case)."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "conformance" / "build_cases.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={"PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr


# -- the validator and the runner fail loudly ---------------------------------------------


def _minimal() -> dict[str, Any]:
    return {
        "name": "x",
        "about": "a case",
        "transport": "ws",
        "steps": [
            {"connect": {"resume": None}},
            {
                "ws": base64.b64encode(
                    msgpack.packb(["h", 1, 1763762000, 500, 15.0, None, 32769])
                ).decode(),
                "expect": {
                    "updates": [],
                    "resync": False,
                    "refusal": None,
                    "resume": None,
                    "state": {},
                },
            },
        ],
    }


def test_minimal_case_validates_and_passes() -> None:
    case = _minimal()
    validate(case, "x")
    run_case(case)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda c: c.pop("about"), "missing keys ['about']"),
        (lambda c: c.update(transport="tcp"), "transport"),
        (lambda c: c["steps"].pop(0), "must be a connect"),
        (lambda c: c["steps"][1]["expect"].pop("state"), "missing keys ['state']"),
        (lambda c: c["steps"][1]["expect"].update(resume="1-x"), "bad position"),
        (lambda c: c["steps"][1].update(sse="event: x\n\n"), "unknown keys ['sse']"),
        (lambda c: c["steps"][1]["expect"].update(stat={}), "unknown keys ['stat']"),
        (
            lambda c: c["steps"][1]["expect"].update(
                state={"quote.X-Y": {"seq": 1, "data": {"bid": 1}}}
            ),
            "decimal string",
        ),
        (
            lambda c: c["steps"][1]["expect"].update(
                state={"quote.X-Y": {"seq": 1, "data": {"bid": None}}}
            ),
            "is null",
        ),
        (lambda c: c["steps"][1].update(ws="not base64!"), "not base64"),
        (lambda c: c.update(name="y"), "differs from the file name"),
    ],
)
def test_malformed_cases_are_refused(mutate: Any, message: str) -> None:
    case = _minimal()
    mutate(case)
    with pytest.raises(CaseError, match=re.escape(message)):
        validate(case, "x")


def test_runner_fails_on_a_wrong_expectation() -> None:
    case = _minimal()
    case["steps"][1]["expect"]["resume"] = "1763762000-500"  # the hello's: wrong
    with pytest.raises(AssertionError, match=r"x step 1 .*resume differs"):
        run_case(case)
    case = _minimal()
    case["steps"][0]["connect"]["resume"] = "1-1"
    with pytest.raises(AssertionError, match=r"x step 0 \(connect\)"):
        run_case(case)
