"""Operating-system helpers shared by every process (node, batcher, L1): atomic files, spawned
worker processes, processes that die with their parent."""
