"""Feed capture and replay: the capture file format, the
recorder, the replayer and the `ticker record` / `ticker replay` commands.

docs/CAPTURE.md describes the file format and the commands.
"""
