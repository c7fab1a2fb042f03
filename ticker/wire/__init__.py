"""Transport framing, sans-I/O: HTTP request heads, WebSocket frames, SSE events, and
the publish protocol's messages (`publish`), shared by the server and the replayer.

Bytes in, decisions and bytes out; no sockets. The trio shells in `ticker.server` feed
these and write what they return."""
