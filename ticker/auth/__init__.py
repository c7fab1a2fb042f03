"""Who may connect, what they may see and what they may publish.

Pure cores (`grants`, `principal`, `denylist`, `sources`) decide from values given to
them; `keys` loads key material from files and `verify` turns a token into a
`Principal` with PyJWT. Nothing here touches a socket; the server's shells call in.
"""
