"""Canonical, strict msgpack encoding of every message that crosses a process boundary.

Theory of operation
-------------------
A message is a frozen dataclass registered with :func:`wire_message`. On the wire it is the
msgpack array ``[type_tag, version, [field_1, field_2, ...]]``: fields in declaration order,
positional, so there are no map keys to reorder and no optional keys to forget.

Every field carries a *spec* (from its ``Annotated`` type) that bounds it: integers have a bit
width, byte strings a length, sequences a maximum item count. The decoder is strict:

* unknown type tags, unknown versions, wrong field counts, wrong field types, values out of
  range and oversized containers are refused;
* trailing bytes after the message are refused;
* the bytes must be the *canonical* encoding (what :func:`encode` would produce), so one
  message has exactly one byte string, and hashing the bytes identifies the message.

Any problem raises :class:`CodecError`. Anything else escaping :func:`decode` is a bug.

Fast paths (issue 13; they change no byte and no verdict). A *flat* message, whose fields are
all integers, byte strings and booleans (Transaction, Vote, Timeout, BlockHeader,
Endorsement...), gets a generated checker that accepts exactly what the generic checks
accept without building paths or dicts, and falls back to them for the precise error; its
body is dumped with one ``attrgetter`` (a tuple packs as an array). A message class with a
non-wire ``_id`` field (:data:`MEMO`: Transaction) carries its :func:`message_id` once
computed, and :func:`decode` fills it from the canonical bytes it checked, so a transaction
is hashed once per node however many times the pool, the block root, execution and the
journal ask for its id.

Signing (see :func:`signing_bytes`) never signs "the message" loosely: it signs
``DOMAIN_PREFIX || domain || 0x00 || chain_id (8 bytes, big endian) || body-without-signature``.
The domain is fixed per message type and the chain id comes from the verifier's own
configuration, so a vote can never be replayed as a proposal, nor a devnet signature on another
chain.
"""

from __future__ import annotations

import dataclasses
import hashlib
import operator
import types
import typing
from collections.abc import Callable
from typing import Any, TypeVar, Union

import msgpack

WIRE_VERSION = 1
#: Upper bound of one encoded message. A block of 20k transfers or 21 blobs fits.
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
DOMAIN_PREFIX = b"seqnet/v1/"
#: Field metadata of a memo field: not on the wire, not compared (``_id: bytes | None =
#: field(default=None, init=False, repr=False, compare=False, metadata=MEMO)``).
MEMO = {"wire": False}

T = TypeVar("T")


class CodecError(ValueError):
    """Bytes that are not a valid, canonical encoding of a known message."""


# --- field specs ---------------------------------------------------------------------------


class Spec:
    """How one field is checked and converted between Python and msgpack objects."""

    def fast_item(self) -> Callable[[Any], Any] | None:
        """A checker returning the value or None (refused: the generic check says why), for
        the items of a sequence; None if this spec has none."""
        return None

    def check(self, value: Any, path: str) -> Any:
        """Validate a decoded msgpack object and return the Python value (raise CodecError)."""
        raise NotImplementedError

    def dump(self, value: Any) -> Any:
        """Return the msgpack-ready object for a Python value."""
        return value


@dataclasses.dataclass(frozen=True)
class UInt(Spec):
    bits: int

    def check(self, value: Any, path: str) -> int:
        if type(value) is not int:
            raise CodecError(f"{path}: expected an integer, got {type(value).__name__}")
        if not 0 <= value < (1 << self.bits):
            raise CodecError(f"{path}: {value} is outside the range of a u{self.bits}")
        return value


@dataclasses.dataclass(frozen=True)
class BigUInt(UInt):
    """An unsigned integer wider than msgpack's 64-bit integers: minimal big-endian bytes on the
    wire (zero is empty), so that each value has exactly one encoding."""

    def check(self, value: Any, path: str) -> int:
        if type(value) is not bytes:
            raise CodecError(
                f"{path}: expected a u{self.bits} as big-endian bytes, got {type(value).__name__}"
            )
        if len(value) > self.bits // 8:
            raise CodecError(f"{path}: {len(value)} bytes is more than a u{self.bits}")
        if value[:1] == b"\x00":
            raise CodecError(f"{path}: a u{self.bits} with a leading zero byte (not canonical)")
        return int.from_bytes(value, "big")

    def dump(self, value: Any) -> Any:
        if type(value) is not int or not 0 <= value < (1 << self.bits):
            raise CodecError(f"{value!r} is not a u{self.bits}")
        return value.to_bytes((value.bit_length() + 7) // 8, "big")


@dataclasses.dataclass(frozen=True)
class Bytes(Spec):
    min_len: int = 0
    max_len: int = MAX_MESSAGE_BYTES

    def check(self, value: Any, path: str) -> bytes:
        if type(value) is not bytes:
            raise CodecError(f"{path}: expected bytes, got {type(value).__name__}")
        if not self.min_len <= len(value) <= self.max_len:
            if self.min_len == self.max_len:
                raise CodecError(f"{path}: expected {self.min_len} bytes, got {len(value)}")
            raise CodecError(
                f"{path}: length {len(value)} outside [{self.min_len}, {self.max_len}]"
            )
        return value


@dataclasses.dataclass(frozen=True)
class Str(Spec):
    max_len: int = 256

    def check(self, value: Any, path: str) -> str:
        if type(value) is not str:
            raise CodecError(f"{path}: expected a string, got {type(value).__name__}")
        if len(value.encode()) > self.max_len:
            raise CodecError(f"{path}: string longer than {self.max_len} bytes")
        return value


class Bool(Spec):
    def check(self, value: Any, path: str) -> bool:
        if type(value) is not bool:
            raise CodecError(f"{path}: expected a boolean, got {type(value).__name__}")
        return value


@dataclasses.dataclass(frozen=True)
class MaxItems:
    """Annotation marker: the maximum number of items of a ``tuple[X, ...]`` field."""

    n: int


@dataclasses.dataclass(frozen=True)
class Seq(Spec):
    item: Spec
    max_items: int

    def check(self, value: Any, path: str) -> tuple[Any, ...]:
        fast = self.item.fast_item()
        if fast is not None and type(value) is list and len(value) <= self.max_items:
            items = [fast(v) for v in value]
            if all(items):  # messages are truthy; a None is an item the fast check refused
                return tuple(items)
        if type(value) is not list:
            raise CodecError(f"{path}: expected a list, got {type(value).__name__}")
        if len(value) > self.max_items:
            raise CodecError(f"{path}: {len(value)} items, at most {self.max_items} allowed")
        return tuple(self.item.check(v, f"{path}[{i}]") for i, v in enumerate(value))

    def dump(self, value: Any) -> Any:
        return [self.item.dump(v) for v in value]


@dataclasses.dataclass(frozen=True)
class Optional(Spec):
    inner: Spec

    def check(self, value: Any, path: str) -> Any:
        return None if value is None else self.inner.check(value, path)

    def dump(self, value: Any) -> Any:
        return None if value is None else self.inner.dump(value)


@dataclasses.dataclass(frozen=True)
class Nested(Spec):
    cls: type

    def check(self, value: Any, path: str) -> Any:
        return _info(self.cls).from_body(value, path)

    def fast_item(self) -> Callable[[Any], Any] | None:
        return _info(self.cls).fast

    def dump(self, value: Any) -> Any:
        if type(value) is not self.cls:
            raise TypeError(f"expected {self.cls.__name__}, got {type(value).__name__}")
        return _info(self.cls).to_body(value)


# Common field types, used as annotations in message definitions.
U8 = typing.Annotated[int, UInt(8)]
U16 = typing.Annotated[int, UInt(16)]
U32 = typing.Annotated[int, UInt(32)]
U64 = typing.Annotated[int, UInt(64)]
U128 = typing.Annotated[int, BigUInt(128)]
U256 = typing.Annotated[int, BigUInt(256)]
Hash32 = typing.Annotated[bytes, Bytes(32, 32)]
PubKey = typing.Annotated[bytes, Bytes(32, 32)]
Signature = typing.Annotated[bytes, Bytes(64, 64)]
Address = typing.Annotated[bytes, Bytes(20, 20)]

DEFAULT_MAX_ITEMS = 1024


def _spec_for(tp: Any, where: str) -> Spec:
    """Derive a Spec from a (possibly Annotated) type hint."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        base, *extras = typing.get_args(tp)
        specs = [e for e in extras if isinstance(e, Spec)]
        if specs:
            return specs[0]
        limits = [e for e in extras if isinstance(e, MaxItems)]
        if limits:
            return _seq_spec(base, limits[0].n, where)
        return _spec_for(base, where)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) != 1 or len(typing.get_args(tp)) != 2:
            raise TypeError(f"{where}: only `X | None` unions are supported")
        return Optional(_spec_for(args[0], where))
    if origin is tuple:
        return _seq_spec(tp, DEFAULT_MAX_ITEMS, where)
    if tp is bool:
        return Bool()
    if tp is str:
        return Str()
    if isinstance(tp, type) and tp in _REGISTRY_BY_CLASS:
        return Nested(tp)
    if tp is int or tp is bytes:
        raise TypeError(f"{where}: bare {tp.__name__} has no bound; use U64, Hash32, Bytes(...)")
    raise TypeError(f"{where}: unsupported field type {tp!r}")


def _seq_spec(tp: Any, max_items: int, where: str) -> Seq:
    args = typing.get_args(tp)
    if typing.get_origin(tp) is not tuple or len(args) != 2 or args[1] is not Ellipsis:
        raise TypeError(f"{where}: sequences must be declared as tuple[X, ...]")
    return Seq(_spec_for(args[0], where), max_items)


# --- message registry ----------------------------------------------------------------------


class _MessageInfo:
    """Per-class codec data, resolved lazily (type hints may refer to later classes)."""

    def __init__(self, cls: type, tag: int, version: int, domain: str | None) -> None:
        self.cls = cls
        self.tag = tag
        self.version = version
        self.domain = domain
        self._fields: list[tuple[str, Spec]] | None = None
        self._fast: Callable[[Any], Any] | None = None
        self._getter: Callable[[Any], Any] | None = None
        self._unsigned_getter: Callable[[Any], Any] | None = None
        #: The class carries its message id in a memo field ``_id``.
        self.memo = any(f.name == "_id" and f.metadata == MEMO for f in dataclasses.fields(cls))

    @property
    def fields(self) -> list[tuple[str, Spec]]:
        if self._fields is None:
            hints = typing.get_type_hints(self.cls, include_extras=True)
            self._fields = [
                (f.name, _spec_for(hints[f.name], f"{self.cls.__name__}.{f.name}"))
                for f in dataclasses.fields(self.cls)
                if f.metadata != MEMO
            ]
            if self.domain is not None and not any(n == "signature" for n, _ in self._fields):
                raise TypeError(f"{self.cls.__name__} has a signing domain but no `signature`")
            if all(type(spec) in (UInt, Bytes, Bool) for _, spec in self._fields):
                self._fast = _flat_checker(self.cls, [spec for _, spec in self._fields])
                names = [name for name, _ in self._fields]
                if len(names) > 1:  # (attrgetter of one name returns the value, no tuple)
                    self._getter = operator.attrgetter(*names)
                unsigned = [name for name, _ in self._fields if name != "signature"]
                if self.domain is not None and len(unsigned) > 1:
                    self._unsigned_getter = operator.attrgetter(*unsigned)
        return self._fields

    @property
    def fast(self) -> Callable[[Any], Any] | None:
        """The generated checker of a flat message (see the module docstring), else None."""
        if self._fields is None:
            self.fields  # noqa: B018 - resolves the fields, and with them the checker
        return self._fast

    def from_body(self, body: Any, path: str) -> Any:
        fast = self.fast
        if fast is not None:
            msg = fast(body)
            if msg is not None:
                return msg
        if type(body) is not list:
            raise CodecError(f"{path}: expected the field list of {self.cls.__name__}")
        fields = self.fields
        if len(body) != len(fields):
            raise CodecError(
                f"{path}: {self.cls.__name__} has {len(fields)} fields, got {len(body)}"
            )
        values = {
            name: spec.check(v, f"{path}.{name}")
            for (name, spec), v in zip(fields, body, strict=True)
        }
        try:
            return self.cls(**values)
        except ValueError as e:  # __post_init__ cross-field checks
            raise CodecError(f"{path}: {e}") from None

    def to_body(self, msg: Any, skip: str | None = None) -> list[Any] | tuple[Any, ...]:
        # (the getters exist only once the fields are resolved)
        if skip is None and self._getter is not None:
            return self._getter(msg)  # type: ignore[no-any-return]
        if skip == "signature" and self._unsigned_getter is not None:
            return self._unsigned_getter(msg)  # type: ignore[no-any-return]
        return [spec.dump(getattr(msg, name)) for name, spec in self.fields if name != skip]


def _flat_checker(cls: type, specs: list[Spec]) -> Callable[[Any], Any]:
    """A generated function that returns ``cls(*body)`` if every field passes exactly the
    generic checks of ``specs`` (UInt, Bytes, Bool), else None (also when ``cls`` refuses the
    values: its generic path turns that into a CodecError)."""
    names = [f"f{i}" for i in range(len(specs))]
    lines = [
        "def check(body):",
        f"    if type(body) is not list or len(body) != {len(specs)}:",
        "        return None",
        f"    {', '.join(names)}{',' if len(names) == 1 else ''} = body",
    ]
    for name, spec in zip(names, specs, strict=True):
        if isinstance(spec, UInt):
            cond = f"type({name}) is not int or not 0 <= {name} < {1 << spec.bits}"
        elif isinstance(spec, Bytes):
            lo, hi = spec.min_len, spec.max_len
            cond = f"type({name}) is not bytes or not {lo} <= len({name}) <= {hi}"
        else:
            cond = f"type({name}) is not bool"
        lines += [f"    if {cond}:", "        return None"]
    lines += [
        "    try:",
        f"        return cls({', '.join(names)})",
        "    except ValueError:",
        "        return None",
    ]
    scope: dict[str, Any] = {"cls": cls}
    exec("\n".join(lines), scope)  # the source is built above from the specs alone
    return scope["check"]  # type: ignore[no-any-return]


_REGISTRY_BY_TAG: dict[int, _MessageInfo] = {}
_REGISTRY_BY_CLASS: dict[type, _MessageInfo] = {}

# Tag ranges keep the modules that register messages from colliding.
TAG_RANGES = {
    "shared": range(1, 64),  # sequencer_node.wire: consensus, batches, evidence, L1 calls
    "node": range(64, 128),  # sequencer_node p2p-only messages
    "l1": range(128, 192),  # l1_mock-only messages
}


def wire_message(
    tag: int, *, version: int = WIRE_VERSION, domain: str | None = None
) -> Callable[[type[T]], type[T]]:
    """Register a frozen dataclass as a wire message with a unique type tag.

    ``domain`` makes the message signable: its ``signature`` field is excluded from the
    signing bytes, which start with the domain (see :func:`signing_bytes`).
    """

    def register(cls: type[T]) -> type[T]:
        params = getattr(cls, "__dataclass_params__", None)
        if params is None or not params.frozen:
            raise TypeError(f"{cls.__name__} must be a frozen dataclass")
        if tag in _REGISTRY_BY_TAG:
            other = _REGISTRY_BY_TAG[tag].cls.__name__
            raise TypeError(f"tag {tag} of {cls.__name__} is already used by {other}")
        if not 0 < tag < 256:
            raise TypeError(f"tag {tag} must be in 1..255")
        info = _MessageInfo(cls, tag, version, domain)
        _REGISTRY_BY_TAG[tag] = info
        _REGISTRY_BY_CLASS[cls] = info
        return cls

    return register


def _info(cls: type) -> _MessageInfo:
    try:
        return _REGISTRY_BY_CLASS[cls]
    except KeyError:
        raise TypeError(f"{cls.__name__} is not a registered wire message") from None


def registered_messages() -> list[type]:
    """Every registered message class, by tag (for exhaustive tests)."""
    return [_REGISTRY_BY_TAG[t].cls for t in sorted(_REGISTRY_BY_TAG)]


def message_tag(cls: type) -> int:
    return _info(cls).tag


# --- encode / decode -----------------------------------------------------------------------


def _pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)  # type: ignore[no-any-return]


def encode(msg: Any) -> bytes:
    """The canonical bytes of a registered message (envelope included)."""
    info = _info(type(msg))
    data = _pack([info.tag, info.version, info.to_body(msg)])
    if len(data) > MAX_MESSAGE_BYTES:
        raise ValueError(f"{type(msg).__name__} encodes to {len(data)} bytes > limit")
    return data


def _reject_ext(code: int, data: bytes) -> Any:
    raise CodecError(f"msgpack extension type {code} is not allowed")


def _unpack(data: bytes, max_bytes: int) -> Any:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CodecError(f"expected bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise CodecError(f"message of {len(data)} bytes exceeds the limit of {max_bytes}")
    if len(data) == 0:
        raise CodecError("empty message")
    try:
        return msgpack.unpackb(
            bytes(data),
            raw=False,
            use_list=True,
            strict_map_key=True,
            max_map_len=0,  # no field of any message is a map
            max_ext_len=0,
            ext_hook=_reject_ext,
        )
    except CodecError:
        raise
    except msgpack.ExtraData:
        raise CodecError("trailing bytes after the message") from None
    except (ValueError, msgpack.UnpackException) as e:  # FormatError, StackError, limits
        raise CodecError(f"not valid msgpack: {type(e).__name__}: {e}") from None


def decode(
    data: bytes, expected: type[T] | None = None, *, max_bytes: int = MAX_MESSAGE_BYTES
) -> T:
    """Decode canonical bytes into a message; if ``expected`` is given, require that type.

    Raises:
        CodecError: for anything that is not exactly the canonical encoding of a known,
            well-formed message (of the expected type).
    """
    obj = _unpack(data, max_bytes)
    if type(obj) is not list or len(obj) != 3:
        raise CodecError("not a message envelope [type, version, body]")
    tag, version, body = obj
    if type(tag) is not int or tag not in _REGISTRY_BY_TAG:
        raise CodecError(f"unknown message type {tag!r}")
    info = _REGISTRY_BY_TAG[tag]
    if expected is not None and info.cls is not expected:
        raise CodecError(f"expected {expected.__name__}, got {info.cls.__name__}")
    if type(version) is not int or version != info.version:
        raise CodecError(f"{info.cls.__name__}: unsupported version {version!r}")
    msg = info.from_body(body, info.cls.__name__)
    raw = bytes(data)
    if _pack([info.tag, info.version, info.to_body(msg)]) != raw:
        raise CodecError(f"{info.cls.__name__}: not the canonical encoding")
    if info.memo:  # the bytes just checked are the canonical ones: the id for free
        object.__setattr__(msg, "_id", hashlib.sha256(raw).digest())
    return typing.cast(T, msg)


def message_id(msg: Any) -> bytes:
    """sha256 of the canonical encoding: the identity used for dedup and hashing (computed
    once per object for a class with a memo field)."""
    info = _info(type(msg))
    if not info.memo:
        return hashlib.sha256(encode(msg)).digest()
    mid: bytes | None = msg._id
    if mid is None:
        mid = hashlib.sha256(encode(msg)).digest()
        object.__setattr__(msg, "_id", mid)
    return mid


def signing_bytes(msg: Any, chain_id: int) -> bytes:
    """The exact bytes a signature over ``msg`` covers on chain ``chain_id``.

    Domain-separated per message type and per chain; the ``signature`` field is left out.
    """
    info = _info(type(msg))
    if info.domain is None:
        raise TypeError(f"{type(msg).__name__} is not a signable message")
    if not 0 <= chain_id < 1 << 64:
        raise ValueError("chain id must fit in 64 bits")
    return b"".join(
        (
            DOMAIN_PREFIX,
            info.domain.encode(),
            b"\x00",
            chain_id.to_bytes(8, "big"),
            _pack([info.tag, info.version, info.to_body(msg, skip="signature")]),
        )
    )
