"""Opening the byte stream under a feed connection: TCP, or TLS over TCP.

The TLS handshake is done here, inside the connect timeout, so a certificate that is
not trusted fails at once with a clear error instead of surfacing later as a broken
stream. Every failure becomes a `ConnectionEnded` carrying its `Ending`. No protocol.
"""

from __future__ import annotations

import os
import ssl

import trio

from ticker.client.endings import ConnectionEnded, Ending, EndingKind
from ticker.client.endpoint import Endpoint
from ticker.client.errors import FeedConfigError, FeedTlsError


def make_ssl_context(ca_file: str | os.PathLike[str] | None = None) -> ssl.SSLContext:
    """A client TLS context that verifies the server, trusting `ca_file` if given.

    Args:
        ca_file: a PEM file of CA certificates (e.g. a private CA); None trusts the
            system's default CAs.

    Raises:
        FeedConfigError: the file cannot be read or holds no certificate.
    """
    try:
        return ssl.create_default_context(cafile=os.fspath(ca_file) if ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise FeedConfigError(f"cannot load CA file {ca_file}: {exc}") from None


async def connect_tcp(host: str, port: int) -> trio.SocketStream:
    """A TCP connection to the first address of `host` that answers.

    Unlike `trio.open_tcp_stream`, whose socket can leak when it is cancelled just as
    the connection succeeds, every socket made here is closed on any way out.

    Raises:
        OSError: no address answered (the last error), or the name did not resolve.
    """
    infos = await trio.socket.getaddrinfo(host, port, type=trio.socket.SOCK_STREAM)
    last_error: OSError = OSError(f"{host} has no address")
    for family, kind, proto, _, address in infos:
        sock = trio.socket.socket(family, kind, proto)
        try:
            await sock.connect(address)
        except OSError as exc:
            sock.close()
            last_error = exc
            continue
        except BaseException:
            sock.close()
            raise
        return trio.SocketStream(sock)
    raise last_error


async def open_stream(
    endpoint: Endpoint, ssl_context: ssl.SSLContext | None, timeout_s: float
) -> trio.abc.Stream:
    """A connected stream to `endpoint`, TLS-wrapped and handshaken when it is TLS.

    Raises:
        ConnectionEnded: refused, unreachable, timed out, or the TLS handshake failed
            (an untrusted certificate is fatal: `FeedTlsError`).
    """
    try:
        with trio.fail_after(timeout_s):
            tcp = await connect_tcp(endpoint.host, endpoint.port)
            if not endpoint.tls:
                return tcp
            context = ssl_context if ssl_context is not None else make_ssl_context()
            stream = trio.SSLStream(
                tcp, context, server_hostname=endpoint.host, https_compatible=True
            )
            try:
                await stream.do_handshake()
            except BaseException:
                await trio.aclose_forcefully(tcp)
                raise
            return stream
    except trio.TooSlowError:
        detail = f"no connection to {endpoint} within {timeout_s} s"
        raise ConnectionEnded(Ending(EndingKind.CONNECT_FAILED, detail)) from None
    except OSError as exc:
        raise ConnectionEnded(Ending(EndingKind.CONNECT_FAILED, str(exc))) from None
    except trio.BrokenResourceError as exc:
        cause = exc.__cause__
        if isinstance(cause, ssl.SSLCertVerificationError):
            detail = f"TLS certificate of {endpoint.host} not trusted: {cause.verify_message}"
            error = FeedTlsError(detail)
            raise ConnectionEnded(Ending(EndingKind.TLS, detail, error)) from None
        detail = f"TLS handshake with {endpoint} failed: {cause or exc}"
        raise ConnectionEnded(Ending(EndingKind.CONNECT_FAILED, detail)) from None
