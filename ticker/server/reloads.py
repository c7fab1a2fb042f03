"""Files the server reads again while it runs: the deny list, the publish tokens and the
verification keys (a public key PEM or JWKS file).

Each is checked every `auth_deny_poll_s` (modification time, size, inode) and on SIGHUP;
a new deny list ends the live streams it revokes; new keys verify every token presented
from then on (a stream keeps the token it was admitted with until it expires or is
refreshed). A file that fails to load keeps the previous one in force, logged once per
change with no entry or digest in the line.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable

import trio

from ticker.auth.denylist import MAX_DENY_FILE_BYTES, DenyList, parse_deny_list
from ticker.auth.keys import load_keys
from ticker.auth.publishers import load_publishers
from ticker.auth.verify import Verifier
from ticker.errors import ConfigError
from ticker.server.context import ServerContext
from ticker.server.stats import EndReason
from ticker.server.stream_auth import Gate

log = logging.getLogger("ticker.server")


def read_deny_file(path: str) -> DenyList:
    """Read and parse the deny list.

    Raises:
        ConfigError: unreadable, too large, or a bad line.
    """
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_DENY_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read auth_deny_file {path}: {exc.strerror}") from None
    if len(data) > MAX_DENY_FILE_BYTES:
        raise ConfigError(f"auth_deny_file {path} is larger than {MAX_DENY_FILE_BYTES} bytes")
    return parse_deny_list(data.decode("utf-8", "replace"), "auth_deny_file")


def revoke_live(gate: Gate) -> int:
    """End every live stream whose principal the deny list now denies; how many."""
    ended = 0
    for subscriber, principal in list(gate.live.items()):
        if gate.deny.denies(principal):
            subscriber.end(EndReason.REVOKED)
            ended += 1
    gate.revoked += ended
    return ended


def _modified(path: str) -> tuple[int, int, int] | None:
    try:
        status = os.stat(path)
    except OSError:
        return None
    return (status.st_mtime_ns, status.st_size, status.st_ino)


def _reload_deny_list(context: ServerContext, path: str) -> None:
    gate = context.auth
    assert gate is not None
    gate.deny = read_deny_file(path)
    ended = revoke_live(gate)
    log.info("deny list reloaded: %d entries; %d stream(s) ended", len(gate.deny), ended)


def _reload_keys(context: ServerContext, path: str) -> None:
    gate = context.auth
    assert gate is not None
    config = context.config
    files = (config.auth_public_key_file, config.auth_jwks_file)
    keys = load_keys("", *files, config.auth_algorithms)
    gate.verifier = Verifier(keys, gate.verifier.rules)
    kids = ", ".join(sorted({key.kid or "-" for key in keys}))
    log.info("verification keys reloaded: %d key(s), kid %s", len(keys), kids)


def _reload_publishers(context: ServerContext, path: str) -> None:
    config = context.config
    context.publishers = load_publishers(config.publish_token, path)
    names = ", ".join(p.name for p in context.publishers)
    log.info("publish tokens reloaded: %s", names)  # names only, never a digest


async def run_reloads(context: ServerContext) -> None:
    """Reload the deny list, the publish tokens and the key file when they change (checked every
    `auth_deny_poll_s`) or on SIGHUP. A new deny list ends the live streams it revokes;
    a publisher removed from the file can publish no more batch. A file that fails to
    load keeps the previous one in force (logged once per change)."""
    config = context.config
    watched: list[tuple[str, str, Callable[[ServerContext, str], None]]] = []
    if context.auth is not None and config.auth_deny_file:
        watched.append(("deny list", config.auth_deny_file, _reload_deny_list))
    key_file = config.auth_public_key_file or config.auth_jwks_file
    if context.auth is not None and key_file:
        watched.append(("verification keys", key_file, _reload_keys))
    if config.publish_tokens_file:
        watched.append(("publish tokens", config.publish_tokens_file, _reload_publishers))
    if not watched:
        return
    seen = [_modified(path) for _, path, _ in watched]
    wake = trio.Event()

    async def on_sighup() -> None:
        with trio.open_signal_receiver(signal.SIGHUP) as signals:
            async for _ in signals:
                wake.set()

    async with trio.open_nursery() as nursery:
        if threading.current_thread() is threading.main_thread():
            nursery.start_soon(on_sighup)
        while True:
            with trio.move_on_after(config.auth_deny_poll_s):
                await wake.wait()
            hup = wake.is_set()
            wake = trio.Event()
            for index, (what, path, reload) in enumerate(watched):
                now = _modified(path)
                if now == seen[index] and not hup:
                    continue
                seen[index] = now
                try:
                    reload(context, path)
                except ConfigError as exc:
                    log.warning("%s not reloaded, the previous one stays: %s", what, exc)
