"""Hypothesis strategies derived from the codec's own field specs, for every wire message."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

import sequencer_node.wire.messages as m
from sequencer_node.wire import codec
from sequencer_node.wire.da.attest import DAPointer


def for_spec(spec: codec.Spec, depth: int = 0) -> st.SearchStrategy[Any]:
    if isinstance(spec, codec.UInt):
        top = (1 << spec.bits) - 1
        return st.one_of(st.integers(0, min(top, 1000)), st.integers(0, top))
    if isinstance(spec, codec.Bytes):
        if spec.min_len > 64:
            # A large fixed size (a 128 KiB blob): a short random pattern tiled to it. Drawing
            # every byte made a message with blobs cost hypothesis ~26 s a test.
            n = spec.min_len
            return st.binary(min_size=1, max_size=64).map(lambda p: (p * (n // len(p) + 1))[:n])
        return st.binary(min_size=spec.min_len, max_size=min(spec.max_len, max(spec.min_len, 64)))
    if isinstance(spec, codec.Str):
        return st.text(max_size=min(spec.max_len // 4, 20))
    if isinstance(spec, codec.Bool):
        return st.booleans()
    if isinstance(spec, codec.Optional):
        return st.none() | for_spec(spec.inner, depth)
    if isinstance(spec, codec.Seq):
        return st.lists(for_spec(spec.item, depth + 1), max_size=3 if depth < 2 else 0).map(tuple)
    if isinstance(spec, codec.Nested):
        return message(spec.cls, depth + 1)
    raise TypeError(spec)


def _batch_header_fields(kw: dict[str, Any]) -> dict[str, Any]:
    """A BatchHeader's cross-field rules, met by construction: drawn at random, 3 in 4 broke
    one, and every message holding a header (a SubmitBatch with its blobs) was drawn again."""
    first, last = sorted((kw["first_height"], kw["last_height"]))
    kind = kw["da_kind"]
    return kw | {
        "first_height": first,
        "last_height": last,
        "blob_hashes": kw["blob_hashes"] if kind == m.DA_BLOBS else (),
        "da_pointer": kw["da_pointer"] if kind == m.DA_EXTERNAL else None,
    }


#: Per message type: field strategies in place of the spec's, and a repair of the drawn fields
#: that meets the type's cross-field rules (``__post_init__``) instead of filtering.
_FIELDS: dict[type, dict[str, st.SearchStrategy[Any]]] = {
    m.BatchHeader: {
        "da_kind": st.sampled_from(sorted(m.DA_KINDS)),
        # Always a pointer: the repair keeps it for an extda header only.
        "da_pointer": st.deferred(lambda: message(DAPointer, 1)),
    },
}
_REPAIR: dict[type, Callable[[dict[str, Any]], dict[str, Any]]] = {
    m.BatchHeader: _batch_header_fields,
}


def message(cls: type, depth: int = 0) -> st.SearchStrategy[Any]:
    fields = codec._info(cls).fields
    kwargs = {name: for_spec(spec, depth) for name, spec in fields}
    kwargs.update(_FIELDS.get(cls, {}))
    repair = _REPAIR.get(cls)

    def build(**kw: Any) -> Any:
        try:
            return cls(**(repair(kw) if repair is not None else kw))
        except ValueError:  # cross-field rules (__post_init__) with no repair
            return None

    return st.builds(build, **kwargs).filter(lambda m: m is not None)


def any_message() -> st.SearchStrategy[Any]:
    return st.sampled_from(codec.registered_messages()).flatmap(message)
