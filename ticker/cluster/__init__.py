"""The cluster: hub -> Redis Streams -> edges (docs/CLUSTER.md).

The leading hub appends every published batch, already encoded, to one Redis stream per
cluster, fenced by a lease so a hub that lost it can never write; edges (and a standby
hub that takes over) follow the stream into the same `Hub` the single process uses, so
positions, bytes and snapshots are the same on every node.
"""
