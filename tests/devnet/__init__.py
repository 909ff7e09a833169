"""Tests of the local devnet (seqctl devnet) and the docker-compose files."""
