"""The trio shells of the server: listener, sessions, fanout, venue feed tasks, and the
process wiring (`process`).

They read bytes, feed the pure core (`ticker.core`, `ticker.wire`, `ticker.venues`) and
write what it returns; decisions about market data or the protocol belong in the core."""
