"""The normalized market-data model shared by every layer: fixed-point numbers,
instruments and normalized events. Plain data only; no behaviour beyond validation."""
