"""The pure core below normalization: consolidation across venues, the sequencer
(single writer of positions and topic state), the delta codec, wire encoding, the
replay buffer and the client-side state mirror. No I/O, no clocks, no trio."""
