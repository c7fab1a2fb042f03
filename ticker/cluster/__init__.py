"""The cluster: hub -> Redis Streams -> edges.

One leading hub appends every published batch to a Redis stream (`redis_log`); edges
follow that stream and serve clients exactly as `ticker serve --role all` does. This
package owns the cluster's use of Redis and must not know about venues or the wire format.
"""
