"""The abuse limits' pure cores: client address behind proxies, counts per key, the
command budget, refusal episodes, origins, CORS and the anonymous SSE rate."""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ticker.config import Config
from ticker.errors import ConfigError
from ticker.server.limits import (
    CommandBudget,
    ConnectionCounts,
    EpisodeLog,
    FrontDoor,
    Refusal,
    Verdict,
    check_origins,
    client_address,
    cors_headers,
    is_exempt,
    origin_allowed,
    parse_networks,
    shares_with,
    sse_max_rate,
)


@pytest.fixture(autouse=True)
def deadline() -> None:
    """These tests are synchronous (no trio run): the package's async deadline is
    replaced by nothing."""


PROXIES = parse_networks(["10.0.0.0/8", "fd00::/8"], "trusted_proxies")

# -- the client address behind trusted proxies -------------------------------------------


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("203.0.113.9", "198.51.100.1", "203.0.113.9"),  # an untrusted peer: its XFF is ignored
        ("10.0.0.2", "", "10.0.0.2"),  # a proxy that says nothing
        ("10.0.0.2", "198.51.100.1", "198.51.100.1"),
        ("10.0.0.2", "1.2.3.4, 198.51.100.1", "198.51.100.1"),  # left of it: forgeable
        ("10.0.0.2", "198.51.100.1, 10.0.0.7", "198.51.100.1"),  # two trusted hops
        ("10.0.0.2", "10.0.0.8, 10.0.0.7", "10.0.0.8"),  # all trusted: the leftmost
        ("10.0.0.2", "garbage", "10.0.0.2"),  # not an address: the last trusted hop
        ("10.0.0.2", "198.51.100.1, unknown, 10.0.0.7", "10.0.0.7"),
        ("10.0.0.2", "198.51.100.1:4711", "198.51.100.1"),  # a port is dropped
        ("10.0.0.2", "[2001:db8::1]:443", "2001:db8::1"),
        ("10.0.0.2", "2001:db8::1", "2001:db8::1"),
        ("fd00::5", "198.51.100.1", "198.51.100.1"),
        ("::ffff:10.0.0.2", "198.51.100.1", "198.51.100.1"),  # IPv4-mapped peer
        ("not-an-ip", "198.51.100.1", "not-an-ip"),
    ],
)
def test_the_client_is_the_rightmost_untrusted_forwarded_address(
    peer: str, forwarded: str, client: str
) -> None:
    assert client_address(peer, forwarded, PROXIES) == client


def test_without_trusted_proxies_the_peer_is_the_client() -> None:
    assert client_address("10.0.0.2", "198.51.100.1", ()) == "10.0.0.2"


addresses = st.ip_addresses(v=4).map(str)


@given(
    forged=st.lists(st.text(max_size=20).filter(lambda t: "," not in t) | addresses, max_size=5),
    client=addresses.filter(lambda a: not ipaddress.ip_address(a).is_private),
    hops=st.lists(st.sampled_from(["10.0.0.7", "10.1.2.3"]), max_size=3),
)
def test_what_a_client_puts_in_the_header_never_changes_its_address(
    forged: list[str], client: str, hops: list[str]
) -> None:
    # The client sends any X-Forwarded-For; the first trusted proxy appends the client's
    # real address, and each further trusted proxy the one before it.
    header = ", ".join([*forged, client, *hops])
    assert client_address("10.0.0.2", header, PROXIES) == client


def test_bad_networks_are_refused_with_the_setting_named() -> None:
    with pytest.raises(ConfigError, match="trusted_proxies"):
        parse_networks(["10.0.0.0/33"], "trusted_proxies")
    assert parse_networks(["10.0.0.1"], "x") == (ipaddress.ip_network("10.0.0.1/32"),)


def test_exempt_networks() -> None:
    loopback = parse_networks(["127.0.0.0/8", "::1/128"], "x")
    assert is_exempt("127.0.0.1", loopback) and is_exempt("::1", loopback)
    assert not is_exempt("203.0.113.9", loopback)
    assert not is_exempt("garbage", loopback)


# -- streams per key ------------------------------------------------------------------------


@given(st.lists(st.tuples(st.booleans(), st.sampled_from("abc")), max_size=60))
def test_counts_per_key_never_exceed_the_maximum_and_free_their_entries(
    steps: list[tuple[bool, str]],
) -> None:
    counts = ConnectionCounts(2)
    model: dict[str, int] = {}
    for acquire, key in steps:
        if acquire:
            admitted = counts.acquire(key)
            assert admitted == (model.get(key, 0) < 2)
            if admitted:
                model[key] = model.get(key, 0) + 1
        elif model.get(key, 0):
            counts.release(key)
            model[key] -= 1
        assert counts.held(key) == model.get(key, 0) <= 2
    # An entry lives only while its key holds a stream.
    assert len(counts) == sum(1 for n in model.values() if n)


def test_zero_means_no_maximum() -> None:
    counts = ConnectionCounts(0)
    assert all(counts.acquire("a") for _ in range(1000))
    with pytest.raises(ConfigError):
        ConnectionCounts(-1)


def test_the_front_door_counts_streams_per_address_and_per_any_other_key() -> None:
    front = FrontDoor(
        max_connections_per_ip=1,
        connect_rate_per_ip_per_s=0,
        connect_burst_per_ip=1,
        max_ips=10,
        exempt=parse_networks(["127.0.0.0/8"], "x"),
    )
    assert front.open_stream("203.0.113.9") is None
    refusal = front.open_stream("203.0.113.9")
    assert refusal is not None and refusal.status == 429
    assert refusal.limit == "connections_per_ip" and refusal.log
    again = front.open_stream("203.0.113.9")
    assert again is not None and not again.log  # the same episode: not logged again
    front.close_stream("203.0.113.9")
    assert front.open_stream("203.0.113.9") is None  # admitted: the episode is over
    assert front.open_stream("203.0.113.9") is not None
    assert front.open_stream("203.0.113.9") is not None and front.streams.held("203.0.113.9") == 1
    # This host is exempt, and nothing is counted for it.
    assert all(front.open_stream("127.0.0.1") is None for _ in range(5))
    assert front.streams.held("127.0.0.1") == 0
    front.close_stream("127.0.0.1")
    # The per-subject hook: the same call with the subject's own counts.
    subjects = ConnectionCounts(1)
    assert front.open_stream("alice", subjects) is None
    refused = front.open_stream("alice", subjects)
    assert refused is not None and refused.limit == "connections_per_subject"
    front.close_stream("alice", subjects)
    assert subjects.held("alice") == 0


def test_the_connect_rate_refuses_with_a_retry_time_and_spares_exempt_addresses() -> None:
    front = FrontDoor(
        max_connections_per_ip=0,
        connect_rate_per_ip_per_s=2.0,
        connect_burst_per_ip=3,
        max_ips=10,
        exempt=parse_networks(["127.0.0.0/8"], "x"),
    )
    assert [front.admit_connection("198.51.100.1", 5.0) for _ in range(3)] == [None] * 3
    refusal = front.admit_connection("198.51.100.1", 5.0)
    assert refusal is not None and refusal.status == 429 and refusal.retry_after_s == 0.5
    assert refusal.limit == "connect_rate_per_ip" and refusal.log
    assert b"\r\nRetry-After: 1\r\n" in refusal.response()
    second = front.admit_connection("198.51.100.1", 5.1)
    assert second is not None and not second.log
    assert front.admit_connection("198.51.100.2", 5.1) is None  # its own bucket
    assert front.admit_connection("198.51.100.1", 5.5) is None  # refilled
    assert all(front.admit_connection("127.0.0.1", 5.5) is None for _ in range(10))
    off = FrontDoor(
        max_connections_per_ip=0, connect_rate_per_ip_per_s=0, connect_burst_per_ip=1, max_ips=1
    )
    assert all(off.admit_connection("198.51.100.1", 0.0) is None for _ in range(10))


def test_a_refusal_renders_as_text_or_json_with_a_whole_retry_after() -> None:
    text = Refusal(429, "slow down", "connect_rate_per_ip", 2.01).response()
    assert text.startswith(b"HTTP/1.1 429 ") and b"Retry-After: 3\r\n" in text
    assert text.endswith(b"\r\n\r\nslow down\n")
    data = Refusal(403, "no", "origin").response(as_json=True)
    assert b"Retry-After" not in data and b"application/json" in data
    assert data.endswith(b'{"error": "no", "status": 403}')


def test_episodes_log_the_first_refusal_until_admitted_and_are_bounded() -> None:
    episodes = EpisodeLog(max_keys=2)
    assert episodes.refused("x", "a") and not episodes.refused("x", "a")
    assert episodes.refused("y", "a")  # another limit: its own episode
    episodes.admitted("x", "a")
    assert episodes.refused("x", "a")
    assert episodes.refused("x", "b")  # the third episode forgets the least recent
    assert episodes.refused("y", "a")


# -- commands per second per connection ----------------------------------------------------


def test_commands_over_the_burst_are_refused_then_persistence_closes() -> None:
    budget = CommandBudget(rate_per_s=1.0, burst=2, max_strikes=3, now=0.0)
    assert [budget.take(0.0) for _ in range(2)] == [Verdict.APPLY] * 2
    assert [budget.take(0.0) for _ in range(3)] == [Verdict.REFUSE] * 3
    assert budget.take(0.0) is Verdict.CLOSE  # a fourth outstanding refusal
    assert budget.refused == 4


def test_a_client_that_slows_down_is_forgiven() -> None:
    budget = CommandBudget(rate_per_s=1.0, burst=2, max_strikes=3, now=0.0)
    verdicts = [budget.take(0.0) for _ in range(5)]
    assert verdicts[-1] is Verdict.REFUSE
    # Three strikes outstanding; four quiet seconds forgive them and refill the bucket.
    assert budget.take(4.0) is Verdict.APPLY
    assert budget.take(4.0) is Verdict.APPLY
    assert [budget.take(4.0) for _ in range(4)] == [Verdict.REFUSE] * 3 + [Verdict.CLOSE]


def test_a_client_at_twice_the_rate_is_closed_in_time() -> None:
    budget = CommandBudget(rate_per_s=10.0, burst=10, max_strikes=20, now=0.0)
    verdicts = [budget.take(i / 20) for i in range(2000)]  # 20/s for 100 s
    assert Verdict.CLOSE in verdicts


def test_a_rate_of_zero_is_no_limit_and_a_clock_stepping_back_fills_nothing() -> None:
    assert all(CommandBudget(0, 1, 0, 0.0).take(0.0) is Verdict.APPLY for _ in range(100))
    budget = CommandBudget(rate_per_s=1.0, burst=1, max_strikes=10, now=100.0)
    assert budget.take(100.0) is Verdict.APPLY
    assert budget.take(50.0) is Verdict.REFUSE
    assert budget.take(51.0) is Verdict.APPLY


@given(
    st.lists(st.floats(min_value=0, max_value=5, allow_nan=False), min_size=1, max_size=300),
    st.floats(min_value=0.5, max_value=50),
    st.integers(min_value=1, max_value=20),
)
def test_commands_applied_never_exceed_the_burst_plus_the_rate(
    gaps: list[float], rate: float, burst: int
) -> None:
    budget = CommandBudget(rate, burst, max_strikes=10**9, now=0.0)
    now = 0.0
    applied = 0
    for gap in gaps:
        now += gap
        applied += budget.take(now) is Verdict.APPLY
    assert applied <= burst + rate * now + 1e-6
    assert applied + budget.refused == len(gaps)


# -- origins, CORS, the anonymous SSE rate -------------------------------------------------


@pytest.mark.parametrize(
    ("origin", "host", "allowed", "ok"),
    [
        ("", "ticker.example:8080", (), True),  # not a browser
        ("https://ticker.example", "ticker.example:8080", (), True),  # same host
        ("http://TICKER.example:9000", "ticker.example", (), True),  # any port or scheme
        ("https://evil.example", "ticker.example", (), False),
        ("https://ticker.example.evil.example", "ticker.example", (), False),
        ("https://app.example", "ticker.example", ("https://app.example",), True),
        ("https://app.example:444", "ticker.example", ("https://app.example",), False),
        ("https://evil.example", "ticker.example", ("*",), True),
        ("null", "ticker.example", (), False),  # a sandboxed page or a file
        ("null", "ticker.example", ("null",), True),
        ("https://evil.example/path", "evil.example", (), False),  # not an origin
        ("garbage", "ticker.example", (), False),
        ("http://[::1]:8000", "[::1]:8080", (), True),
        ("https://ticker.example", "", (), False),  # no Host to be the same as
    ],
)
def test_which_origins_may_open_a_stream(
    origin: str, host: str, allowed: tuple[str, ...], ok: bool
) -> None:
    assert origin_allowed(origin, host, check_origins(allowed, "stream_origins")) is ok


def test_origin_settings_are_checked_and_normalized() -> None:
    assert check_origins(["HTTPS://App.Example:8443/", "*", "null"], "s") == (
        "https://app.example:8443",
        "*",
        "null",
    )
    for bad in ("app.example", "https://app.example/x", "https://app.example:99999", ""):
        with pytest.raises(ConfigError, match="cors_origins"):
            check_origins([bad], "cors_origins")


def test_cors_answers() -> None:
    assert cors_headers("https://x.example", ("*",)) == [("Access-Control-Allow-Origin", "*")]
    assert cors_headers("", ("*",)) == [("Access-Control-Allow-Origin", "*")]
    listed = ("https://app.example",)
    assert cors_headers("https://APP.example", listed) == [
        ("Vary", "Origin"),
        ("Access-Control-Allow-Origin", "https://app.example"),
    ]
    assert cors_headers("https://evil.example", listed) == [("Vary", "Origin")]
    assert cors_headers("", listed) == [("Vary", "Origin")]
    assert not shares_with("https://evil.example", listed)
    assert shares_with("null", ("null",))
    preflight = dict(cors_headers("https://app.example", listed, preflight=True))
    assert preflight["Access-Control-Allow-Methods"] == "GET"
    assert "Authorization" in preflight["Access-Control-Allow-Headers"]
    assert "Access-Control-Allow-Methods" not in dict(
        cors_headers("https://evil.example", listed, preflight=True)
    )


@pytest.mark.parametrize(
    ("asked", "anonymous", "cap", "got"),
    [
        (None, True, 0.0, None),  # off: as asked
        (30.0, True, 0.0, 30.0),
        (None, True, 5.0, 5.0),  # asked for none: the cap
        (30.0, True, 5.0, 5.0),  # asked for more: the cap
        (2.0, True, 5.0, 2.0),  # asked for less: kept
        (None, False, 5.0, None),  # a subject: as asked
    ],
)
def test_the_anonymous_sse_rate(
    asked: float | None, anonymous: bool, cap: float, got: float | None
) -> None:
    assert sse_max_rate(asked, anonymous=anonymous, anonymous_max_rate=cap) == got


def test_config_checks_every_limit_setting() -> None:
    base = Config()
    assert base.cors_origins == ("*",) and base.stream_origins == ()
    cases: list[tuple[dict[str, Any], str]] = [
        ({"max_connections_per_ip": -1}, "max_connections_per_ip"),
        ({"connect_rate_per_ip_per_s": -0.5}, "connect_rate_per_ip_per_s"),
        ({"connect_burst_per_ip": 0}, "connect_burst_per_ip"),
        ({"connect_rate_max_ips": 0}, "connect_rate_max_ips"),
        ({"command_rate_per_s": -1.0}, "command_rate_per_s"),
        ({"command_burst": 0}, "command_burst"),
        ({"max_refused_commands": 0}, "max_refused_commands"),
        ({"sse_anonymous_max_rate_per_s": -1.0}, "sse_anonymous_max_rate_per_s"),
        ({"sse_anonymous_max_rate_per_s": 51.0}, "sse_anonymous_max_rate_per_s"),
        ({"trusted_proxies": ("10.0.0.0/8", "proxy")}, "trusted_proxies"),
        ({"limit_exempt_networks": ("localhost",)}, "limit_exempt_networks"),
        ({"stream_origins": ("evil.example",)}, "stream_origins"),
        ({"cors_origins": ("https://a.example/path",)}, "cors_origins"),
    ]
    for changes, message in cases:
        with pytest.raises(ConfigError, match=message):
            replace(base, **changes)
