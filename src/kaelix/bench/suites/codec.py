"""The codec suite: frame encode/decode, batch encode, `MessageBatch` building and CRC32C,
each beside the peers a user would pick instead (msgspec msgpack with an equivalent
`msgspec.Struct`, pickle protocol 5, the ``crc32c`` package; ``zlib.crc32`` as a reference
line for a different polynomial).

Every contender goes through the same adapter: a factory that prepares the data, checks the
result once, and returns a `Workload` whose call is timed. ``nbytes`` counts payload bytes
(codec cases) or checksummed bytes (CRC cases), the same for every contender of a case.

Imports the public kaelix API only (``kaelix.Message``, ``encode``, ``decode``,
``encode_batch``, ``decode_batch``, ``MessageBatch``, ``crc32c``); peers are imported inside
their factories. Never import numba or kaelix's private modules here.
"""

from __future__ import annotations

import functools
import pickle
import random
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import kaelix
from kaelix.bench._model import Bar, Case, Contender, Suite, SuiteConfig, Workload
from kaelix.bench.suites._options import payload_size as _payload_size
from kaelix.bench.suites._options import size_label

PAYLOAD_SIZE = 64
BATCH_SIZE = 10_000
PICKLE_PROTOCOL = 5
KIB = 1024

_SEED = 20_240_601
_TIMESTAMP_BASE = 1_700_000_000_000_000_000

MessageFields = tuple[bytes, bytes | None, dict[str, bytes], int, int, int, int]
"""(payload, key, headers, partition, producer_id, sequence, timestamp_ns): what pickle
carries, and what the msgspec struct is built from."""

MESSAGE_SHAPE = f"{PAYLOAD_SIZE} B payload, 8 B key, no headers"


def message_shape(payload_size: int = PAYLOAD_SIZE) -> str:
    """The note of the message cases: the messages' shape."""
    return f"{size_label(payload_size)} payload, 8 B key, no headers"


def message_fields(count: int, payload_size: int = PAYLOAD_SIZE) -> list[MessageFields]:
    """``count`` deterministic messages as field tuples: random payloads, an 8-byte key,
    no headers, 8 partitions, one producer, consecutive sequences and timestamps."""
    rng = random.Random(_SEED)
    return [
        (
            rng.randbytes(payload_size),
            b"key-%04d" % (i % 10_000),
            {},
            i % 8,
            7,
            i,
            _TIMESTAMP_BASE + 1_000 * i,
        )
        for i in range(count)
    ]


def kaelix_message(fields: MessageFields) -> Any:
    """The `kaelix.Message` with these fields."""
    payload, key, headers, partition, producer_id, sequence, timestamp_ns = fields
    return kaelix.Message(
        payload,
        key=key,
        headers=headers,
        partition=partition,
        producer_id=producer_id,
        sequence=sequence,
        timestamp_ns=timestamp_ns,
    )


@functools.cache
def msgspec_struct() -> type[Any]:
    """The `msgspec.Struct` equivalent to `kaelix.Message` (frozen, encoded as an array:
    the fastest fair msgspec layout, since a frame carries no field names either)."""
    import msgspec

    class MessageStruct(msgspec.Struct, frozen=True, array_like=True):
        payload: bytes
        key: bytes | None
        headers: dict[str, bytes]
        partition: int
        producer_id: int
        sequence: int
        timestamp_ns: int

    return MessageStruct


def _expect(condition: bool, what: str) -> None:
    if not condition:
        raise AssertionError(f"sanity check failed: {what}")


# ----------------------------------------------------------------- one message, three ways


def _one_message(
    operation: str,
    payload: int,
    roundtrip: Callable[[], object],
    encode: Callable[[], object],
    decode: Callable[[], object],
) -> Workload:
    """The workload for one operation, from a contender's three prepared calls."""
    calls = {"roundtrip": roundtrip, "encode": encode, "decode": decode}
    return Workload(calls[operation], messages=1, nbytes=payload)


def _kaelix_one(operation: str, payload: int) -> Workload:
    message = kaelix_message(message_fields(1, payload)[0])
    encode, decode = kaelix.encode, kaelix.decode
    frame = encode(message)
    _expect(decode(frame) == message, "kaelix.decode(kaelix.encode(m)) == m")
    return _one_message(
        operation,
        payload,
        lambda: decode(encode(message)),
        functools.partial(encode, message),
        functools.partial(decode, frame),
    )


def _msgspec_one(operation: str, payload: int) -> Workload:
    import msgspec

    struct_type = msgspec_struct()
    value = struct_type(*message_fields(1, payload)[0])
    encode = msgspec.msgpack.Encoder().encode
    decode = msgspec.msgpack.Decoder(type=struct_type).decode
    buffer = encode(value)
    _expect(decode(buffer) == value, "msgspec round trip")
    return _one_message(
        operation,
        payload,
        lambda: decode(encode(value)),
        functools.partial(encode, value),
        functools.partial(decode, buffer),
    )


def _pickle_one(operation: str, payload: int) -> Workload:
    value = message_fields(1, payload)[0]
    dumps, loads = pickle.dumps, pickle.loads
    buffer = dumps(value, PICKLE_PROTOCOL)
    _expect(loads(buffer) == value, "pickle round trip")
    return _one_message(
        operation,
        payload,
        lambda: loads(dumps(value, PICKLE_PROTOCOL)),
        functools.partial(dumps, value, PICKLE_PROTOCOL),
        functools.partial(loads, buffer),
    )


def _one_message_contenders(operation: str, payload: int) -> tuple[Contender, ...]:
    return (
        Contender("kaelix", lambda: _kaelix_one(operation, payload), role="kaelix"),
        Contender(
            "msgspec",
            lambda: _msgspec_one(operation, payload),
            requires=("msgspec",),
            note="msgspec.msgpack Encoder and Decoder(type=...) reused, frozen array_like Struct",
        ),
        Contender(
            "pickle",
            lambda: _pickle_one(operation, payload),
            note=f"a tuple of the fields, protocol {PICKLE_PROTOCOL}",
        ),
    )


# ------------------------------------------------------------------------------- batches


def _kaelix_batch(operation: str, payload: int) -> Workload:
    messages = [kaelix_message(fields) for fields in message_fields(BATCH_SIZE, payload)]
    buffer = kaelix.encode_batch(messages)
    _expect(kaelix.decode_batch(buffer) == messages, "kaelix.decode_batch(encode_batch(ms))")
    call: Callable[[], object]
    if operation == "encode":
        call = functools.partial(kaelix.encode_batch, messages)
    elif operation == "from_bytes":
        batch = kaelix.MessageBatch.from_bytes(buffer)
        _expect(len(batch) == BATCH_SIZE, "len(MessageBatch.from_bytes(buf)) == N")
        call = functools.partial(kaelix.MessageBatch.from_bytes, buffer)
    elif operation == "decode_list":
        call = functools.partial(kaelix.decode_batch, buffer)
    else:  # from_messages
        batch = kaelix.MessageBatch.from_messages(messages)
        _expect(len(batch) == BATCH_SIZE, "len(MessageBatch.from_messages(ms)) == N")
        call = functools.partial(kaelix.MessageBatch.from_messages, messages)
    return Workload(call, messages=BATCH_SIZE, nbytes=BATCH_SIZE * payload)


def _msgspec_batch(operation: str, payload: int) -> Workload:
    import msgspec

    struct_type = msgspec_struct()
    values = [struct_type(*fields) for fields in message_fields(BATCH_SIZE, payload)]
    encoder = msgspec.msgpack.Encoder()
    decoder = msgspec.msgpack.Decoder(type=list[struct_type])  # type: ignore[valid-type]
    buffer = encoder.encode(values)
    _expect(decoder.decode(buffer) == values, "msgspec list round trip")
    call: Callable[[], object]
    if operation == "encode":
        call = functools.partial(encoder.encode, values)
    else:
        call = functools.partial(decoder.decode, buffer)
    return Workload(call, messages=BATCH_SIZE, nbytes=BATCH_SIZE * payload)


def _pickle_batch(operation: str, payload: int) -> Workload:
    values = message_fields(BATCH_SIZE, payload)
    buffer = pickle.dumps(values, PICKLE_PROTOCOL)
    _expect(pickle.loads(buffer) == values, "pickle list round trip")
    call: Callable[[], object]
    if operation == "encode":
        call = functools.partial(pickle.dumps, values, PICKLE_PROTOCOL)
    else:
        call = functools.partial(pickle.loads, buffer)
    return Workload(call, messages=BATCH_SIZE, nbytes=BATCH_SIZE * payload)


def _batch_contenders(
    kaelix_operation: str, peer_operation: str, payload: int
) -> tuple[Contender, ...]:
    return (
        Contender("kaelix", lambda: _kaelix_batch(kaelix_operation, payload), role="kaelix"),
        Contender(
            "msgspec",
            lambda: _msgspec_batch(peer_operation, payload),
            requires=("msgspec",),
            note="batches: a list of the same Structs, reused Encoder/Decoder; no checksum",
        ),
        Contender(
            "pickle",
            lambda: _pickle_batch(peer_operation, payload),
            note=f"batches: a list of field tuples, protocol {PICKLE_PROTOCOL}; no checksum",
        ),
    )


# ---------------------------------------------------------------------------------- CRC32C

_CRC_CHECK = 0xE3069283  # CRC-32C of b"123456789" (RFC 3720)


def _crc_data(nbytes: int) -> bytes:
    return random.Random(_SEED + nbytes).randbytes(nbytes)


def _kaelix_crc(nbytes: int) -> Workload:
    _expect(kaelix.crc32c(b"123456789") == _CRC_CHECK, "kaelix.crc32c check value")
    return Workload(functools.partial(kaelix.crc32c, _crc_data(nbytes)), 0, nbytes)


def _package_crc(nbytes: int) -> Workload:
    import crc32c

    _expect(crc32c.crc32c(b"123456789") == _CRC_CHECK, "crc32c.crc32c check value")
    return Workload(functools.partial(crc32c.crc32c, _crc_data(nbytes)), 0, nbytes)


def _zlib_crc(nbytes: int) -> Workload:
    return Workload(functools.partial(zlib.crc32, _crc_data(nbytes)), 0, nbytes)


def _crc_case(label: str, nbytes: int, bars: tuple[Bar, ...]) -> Case:
    return Case(
        name=f"crc32c {label}",
        contenders=(
            Contender("kaelix", lambda: _kaelix_crc(nbytes), role="kaelix"),
            Contender(
                "crc32c",
                lambda: _package_crc(nbytes),
                requires=("crc32c",),
                note="the crc32c package, crc32c.crc32c(data)",
            ),
            Contender(
                "zlib.crc32",
                lambda: _zlib_crc(nbytes),
                role="reference",
                note="CRC-32 (zlib polynomial), not CRC-32C: reference only",
            ),
        ),
        bars=bars,
        throughput="bytes",
        note=f"checksum of one {label} bytes object",
    )


# ----------------------------------------------------------------------------------- suite

_FASTER_THAN_MSGSPEC = Bar("\u2264 msgspec", "faster_than", peer="msgspec")
_AT_LEAST_CRC32C = Bar("\u2265 crc32c", "faster_than", peer="crc32c")
_TWENTY_M_MSG_S = Bar("\u2265 20 M msg/s", "min_messages_per_s", 20e6)
_TEN_GB_S = Bar("\u2265 10 GB/s", "min_bytes_per_s", 10e9)


def cases(config: SuiteConfig) -> Sequence[Case]:
    """The codec cases (the same in quick and full mode).

    ``config.size`` (``--size``) sets the payload of the message and batch cases (64 B by
    default); the CRC32C cases keep their fixed sizes. The DESIGN.md bars of the message
    and batch cases are set at 64 B: the relative one (against msgspec) is checked at any
    size, the absolute ones (msg/s) only at 64 B. Batches always hold `BATCH_SIZE` messages
    (each timed in a calibrated loop), so ``--messages`` does not apply."""
    payload = _payload_size(config, PAYLOAD_SIZE, "codec")
    label = size_label(payload)
    shape = message_shape(payload)
    rate = (_TWENTY_M_MSG_S,) if payload == PAYLOAD_SIZE else ()
    batch = f"{label} (N={BATCH_SIZE:,})"
    return (
        Case(
            f"encode+decode one message ({label})",
            _one_message_contenders("roundtrip", payload),
            bars=(_FASTER_THAN_MSGSPEC,),
            note=shape,
        ),
        Case(
            f"encode one message ({label})",
            _one_message_contenders("encode", payload),
            note=shape,
        ),
        Case(
            f"decode one message ({label})",
            _one_message_contenders("decode", payload),
            note=shape,
        ),
        Case(
            f"batch encode {batch}",
            _batch_contenders("encode", "encode", payload),
            bars=rate,
            note=f"{shape}; kaelix.encode_batch, CRC32C included",
        ),
        Case(
            f"MessageBatch.from_bytes {batch}",
            _batch_contenders("from_bytes", "decode", payload),
            bars=rate,
            note="kaelix checks every frame (lengths, CRC32C) and builds numpy columns, "
            "no object per message; peers build one object per message",
        ),
        Case(
            f"decode_batch to a list {batch}",
            _batch_contenders("decode_list", "decode", payload),
            note="kaelix.decode_batch gives one Message per frame, like the peers",
        ),
        Case(
            f"MessageBatch.from_messages {batch}",
            (Contender("kaelix", lambda: _kaelix_batch("from_messages", payload), role="kaelix"),),
            note="frames and columns built from a list of Message objects",
        ),
        _crc_case("64 B", 64, (_AT_LEAST_CRC32C,)),
        _crc_case("4 KiB", 4 * KIB, (_AT_LEAST_CRC32C,)),
        _crc_case("64 KiB", 64 * KIB, (_TEN_GB_S, _AT_LEAST_CRC32C)),
    )


SUITE = Suite(
    name="codec",
    description="frame codec, batches and CRC32C vs msgspec, pickle and the crc32c package",
    cases=cases,
    options=("size",),
)
