"""A sequencer node of seqnet: pure protocol core (``core``), Trio shell, shared wire formats
(``wire``), and the operator CLI (``cli``)."""
