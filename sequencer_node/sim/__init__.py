"""Deterministic simulation of a sequencer network (pure: no trio, no clock, no global random).

See :mod:`sequencer_node.sim.harness`.
"""
