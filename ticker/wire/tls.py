"""TLS on our own non-blocking sockets: a socket-like object that encrypts in memory.

The streaming path talks to its peers with `send()` and `recv()` on non-blocking sockets
and waits with `trio.lowlevel.wait_readable/wait_writable`. `TlsSocket` keeps that
contract over an `ssl.SSLObject` with memory BIOs, so the sessions serve https and wss
unchanged, and a plain connection pays nothing for TLS existing.

What the contract keeps:
- `recv()` returns all the plaintext that one read of the socket completed (more than
  asked for, if the socket held it), so no plaintext ever waits inside the TLS object
  while the socket looks idle; it raises `BlockingIOError` when the socket had nothing
  or only part of a record.
- `send(data)` encrypts `data` and writes what the kernel takes. Ciphertext the kernel
  did not take stays here, and to make the caller come back for it `send` then reports
  one byte short; the caller's retry with that byte flushes the ciphertext first (the
  byte itself was already encrypted). Callers retry with the unsent tail of the same
  buffer, as `Subscriber` does; a send of another buffer means the caller gave that
  write up, and the owed byte (already on its way) is forgotten. At most one write's
  ciphertext waits here.

This module owns only the byte transform; it knows nothing of HTTP or WebSocket.
"""

from __future__ import annotations

import contextlib
import socket
import ssl

import trio

RAW_RECV_BYTES = 65536
PLAINTEXT_CHUNK = 65536


def server_context(certfile: str, keyfile: str | None) -> ssl.SSLContext:
    """A server TLS context (TLS 1.2+, HTTP/1.1 by ALPN) from a certificate chain file.

    Raises:
        OSError: a file cannot be read, or they do not hold a matching pair (an
            ssl.SSLError); the message names the file(s).
    """
    for role, path in (("certfile", certfile), ("keyfile", keyfile)):
        if path is None:
            continue
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            # load_cert_chain would say only "No such file or directory", not which.
            raise OSError(exc.errno, f"cannot read {role} {path}: {exc.strerror}") from exc
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(certfile, keyfile)
    except ssl.SSLError as exc:
        files = certfile if keyfile is None else f"{certfile} and keyfile {keyfile}"
        raise ssl.SSLError(
            exc.errno, f"certfile {files}: not a certificate chain and matching key ({exc})"
        ) from exc
    context.set_alpn_protocols(["http/1.1"])
    return context


class TlsSocket:
    """A server-side TLS connection over a non-blocking socket, used like the socket."""

    __slots__ = (
        "_eof",
        "_incoming",
        "_outgoing",
        "_owed",
        "_owed_for",
        "_raw",
        "_tls",
        "_unsent",
    )

    def __init__(self, raw: socket.socket, context: ssl.SSLContext) -> None:
        self._raw = raw
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self._unsent = memoryview(b"")
        self._owed = 0
        self._owed_for: object = None
        self._eof = False

    def fileno(self) -> int:
        return self._raw.fileno()

    def close(self) -> None:
        """Send close_notify if the socket takes it at once (best effort), then close."""
        if not self._unsent:
            # SSLWantReadError: we do not wait for the peer's close_notify.
            with contextlib.suppress(ssl.SSLError, OSError, ValueError):
                self._tls.unwrap()
            self._unsent = memoryview(self._outgoing.read())
            with contextlib.suppress(OSError):
                self._push()
        self._raw.close()

    def getpeername(self) -> object:
        return self._raw.getpeername()

    def getsockname(self) -> object:
        return self._raw.getsockname()

    @property
    def family(self) -> socket.AddressFamily:
        return self._raw.family

    async def handshake(self) -> None:
        """Complete the TLS handshake (the caller bounds it in time).

        Raises:
            ssl.SSLError: the client's handshake is bad, or it closed during it
                (SSLEOFError: a client that does not trust our chain just hangs up).
        """
        while True:
            try:
                self._tls.do_handshake()
            except ssl.SSLWantReadError:
                await self._flush()
                await self._receive_raw()
                continue
            await self._flush()
            return

    def send(self, data: bytes | memoryview) -> int:
        """Encrypt and write `data`; the count of bytes taken (see the module docstring).

        Raises:
            BlockingIOError: earlier ciphertext is still waiting for the kernel.
            OSError: the connection broke.
        """
        if self._unsent:
            self._push()
            if self._unsent:
                raise BlockingIOError
        view = memoryview(data)
        if self._owed and view.obj is not self._owed_for:
            self._owed = 0  # the caller gave up that write; its byte went out anyway
        already = min(self._owed, len(view))
        self._owed -= already
        if len(view) > already:
            self._tls.write(view[already:])
            self._unsent = memoryview(self._outgoing.read())
            self._push()
        if self._unsent:
            self._owed = 1
            self._owed_for = view.obj
            return len(view) - 1
        return len(view)

    def recv(self, _max_bytes: int) -> bytes:
        """All plaintext available now; b"" at the end of the stream.

        Records already inside the TLS object come first (a client's first request can
        arrive in the same read as its handshake's end); otherwise one socket read.

        Raises:
            BlockingIOError: no complete record yet.
            OSError / ssl.SSLError: the connection broke or the peer sent garbage.
        """
        if self._eof:
            return b""
        plaintext = self._decrypt()
        if plaintext or self._eof:
            return plaintext
        data = self._raw.recv(RAW_RECV_BYTES)
        if not data:
            return b""
        self._incoming.write(data)
        plaintext = self._decrypt()
        if not plaintext and not self._eof:
            raise BlockingIOError
        return plaintext

    def _decrypt(self) -> bytes:
        """Every complete record the TLS object holds, as plaintext."""
        chunks: list[bytes] = []
        while True:
            try:
                chunk = self._tls.read(PLAINTEXT_CHUNK)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:  # the peer's close_notify
                self._eof = True
                break
            if not chunk:
                break
            chunks.append(chunk)
        if self._outgoing.pending:  # post-handshake messages (key update, tickets)
            self._queue_outgoing()
            self._push()
        return b"".join(chunks)

    # -- internals -------------------------------------------------------------------

    def _queue_outgoing(self) -> None:
        """Move what the TLS object wrote into its BIO behind the ciphertext waiting."""
        if self._outgoing.pending:
            self._unsent = memoryview(bytes(self._unsent) + self._outgoing.read())

    def _push(self) -> None:
        """Write as much waiting ciphertext as the kernel takes now."""
        while self._unsent:
            try:
                sent = self._raw.send(self._unsent)
            except BlockingIOError:
                return
            self._unsent = self._unsent[sent:]

    async def _flush(self) -> None:
        """Write all waiting ciphertext, waiting for the socket as needed (handshake)."""
        self._queue_outgoing()
        while True:
            self._push()
            if not self._unsent:
                return
            await trio.lowlevel.wait_writable(self._raw)

    async def _receive_raw(self) -> None:
        """Feed one socket read into the TLS object, waiting for the socket as needed."""
        while True:
            try:
                data = self._raw.recv(RAW_RECV_BYTES)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(self._raw)
                continue
            except ConnectionError as exc:
                raise ssl.SSLEOFError(f"the client reset the TLS handshake: {exc}") from exc
            if not data:
                raise ssl.SSLEOFError("the client closed during the TLS handshake")
            self._incoming.write(data)
            return
