"""The batcher: certified L2 blocks become co-signed batches posted to L1 as blobs or calldata.

Modules: :mod:`.config` (settings), :mod:`.messages` (p2p messages, tags 100-119),
:mod:`.builder` (pure batch building), :mod:`.kzg_worker` (payload + KZG in a worker
process), :mod:`.cosign` (rebuild-and-compare checks, approval aggregation), :mod:`.poster`
(durable posting with failover and restart reconciliation), :mod:`.records` (all of a
batch's durable state, in one file), :mod:`.service` (:class:`BatcherService`, the node seam).
"""
