"""The golden vectors in tests/vectors/ against kaelix and against the reference.

Every test that both implementations must pass is parametrized over them (ids ``reference``
and ``kaelix``), so ``pytest tests/test_vectors.py -k reference`` checks the vectors and the
reference before the compiled package is built: kaelix is imported only by the tests that use
it. Extra kaelix-only checks (MessageBatch, the table CRC, the ``crc32c`` package) follow.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import reference

VECTORS = Path(__file__).resolve().parent / "vectors"


def _load(name: str) -> Any:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


FRAMES: list[dict[str, Any]] = _load("frames.json")
INVALID: list[dict[str, Any]] = _load("invalid.json")
CRC32C: dict[str, Any] = _load("crc32c.json")

Fields = dict[str, Any]


def fields_from_json(message: dict[str, Any]) -> Fields:
    """A frames.json message as a field dict (the shape the reference decodes to)."""
    return {
        "payload": bytes.fromhex(message["payload_hex"]),
        "key": None if message["key_hex"] is None else bytes.fromhex(message["key_hex"]),
        "headers": {name: bytes.fromhex(value) for name, value in message["headers"].items()},
        "partition": message["partition"],
        "producer_id": message["producer_id"],
        "sequence": message["sequence"],
        "timestamp_ns": message["timestamp_ns"],
    }


def lcg_bytes(length: int, seed: int) -> bytes:
    """The generator that crc32c.json describes, re-implemented here from its description."""
    state = seed
    out = bytearray(length)
    for index in range(length):
        state = (6364136223846793005 * state + 1442695040888963407) % 2**64
        out[index] = state >> 56
    return bytes(out)


# --------------------------------------------------------------------------------------------
# One adapter per implementation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Codec:
    """The operations the vectors exercise, with messages as field dicts."""

    encode: Callable[[Fields], bytes]
    encode_batch: Callable[[list[Fields]], bytes]
    decode: Callable[[bytes, int], Fields]
    decode_batch: Callable[[bytes, int], list[Fields]]
    decode_error: type[Exception]


def _reference_codec() -> Codec:
    return Codec(
        encode=lambda fields: reference.encode(**fields),
        encode_batch=lambda messages: b"".join(reference.encode(**f) for f in messages),
        decode=reference.decode,
        decode_batch=reference.decode_batch,
        decode_error=reference.RefDecodeError,
    )


def _kaelix() -> ModuleType:
    import kaelix

    return kaelix


def _kaelix_codec() -> Codec:
    kaelix = _kaelix()
    from strategies_local import to_fields, to_message

    return Codec(
        encode=lambda fields: kaelix.encode(to_message(fields)),
        encode_batch=lambda messages: kaelix.encode_batch([to_message(f) for f in messages]),
        decode=lambda buf, limit: to_fields(kaelix.decode(buf, max_frame_size=limit)),
        decode_batch=lambda buf, limit: [
            to_fields(m) for m in kaelix.decode_batch(buf, max_frame_size=limit)
        ],
        decode_error=kaelix.DecodeError,
    )


@pytest.fixture(params=["reference", "kaelix"], scope="module")
def codec(request: pytest.FixtureRequest) -> Codec:
    """Each implementation in turn."""
    return _reference_codec() if request.param == "reference" else _kaelix_codec()


@pytest.fixture(scope="module")
def kaelix() -> ModuleType:
    """The compiled package, for the kaelix-only tests."""
    return _kaelix()


# --------------------------------------------------------------------------------------------
# frames.json
# --------------------------------------------------------------------------------------------

frame_cases = pytest.mark.parametrize("case", FRAMES, ids=[c["name"] for c in FRAMES])


def test_worked_example_is_first_and_matches_the_spec_prose() -> None:
    """The layout the spec spells out in words, checked independently of any encoder."""
    case = FRAMES[0]
    frame = bytes.fromhex(case["frame_hex"])
    assert case["name"] == "worked_example"
    assert len(frame) == 72
    assert frame[:4] == b"KLXF"
    assert frame[8:10] == b"\x01\x01"  # version 1, key flag
    assert frame[56:57] == b"k"
    assert frame[57:65] == b"\x01\x00" + b"\x01\x00\x00\x00" + b"hv"
    assert frame[65:70] == b"hello"
    assert frame[70:72] == b"\x00\x00"


@frame_cases
def test_golden_frame_encodes_exactly(codec: Codec, case: dict[str, Any]) -> None:
    assert codec.encode(fields_from_json(case["message"])).hex() == case["frame_hex"]


@frame_cases
def test_golden_frame_decodes_to_its_message(codec: Codec, case: dict[str, Any]) -> None:
    frame = bytes.fromhex(case["frame_hex"])
    decoded = codec.decode(frame, reference.DEFAULT_MAX_FRAME_SIZE)
    assert decoded == fields_from_json(case["message"])
    assert list(decoded["headers"]) == list(case["message"]["headers"])  # order preserved


def test_all_golden_frames_as_one_batch(codec: Codec) -> None:
    messages = [fields_from_json(case["message"]) for case in FRAMES]
    batch = b"".join(bytes.fromhex(case["frame_hex"]) for case in FRAMES)
    assert codec.encode_batch(messages) == batch
    assert codec.decode_batch(batch, reference.DEFAULT_MAX_FRAME_SIZE) == messages


def test_empty_batch(codec: Codec) -> None:
    assert codec.encode_batch([]) == b""
    assert codec.decode_batch(b"", reference.DEFAULT_MAX_FRAME_SIZE) == []


# --------------------------------------------------------------------------------------------
# invalid.json
# --------------------------------------------------------------------------------------------

invalid_cases = pytest.mark.parametrize("case", INVALID, ids=[c["name"] for c in INVALID])


@invalid_cases
def test_invalid_input_gives_exact_error(codec: Codec, case: dict[str, Any]) -> None:
    data = bytes.fromhex(case["input_hex"])
    function = codec.decode if case["function"] == "decode" else codec.decode_batch
    with pytest.raises(codec.decode_error) as caught:
        function(data, case["max_frame_size"])
    error: Any = caught.value
    expected = (case["reason"], case["offset"], case["frame_offset"])
    assert (error.reason, error.offset, error.frame_offset) == expected


# A bad first frame is the same error for decode and decode_batch; an empty buffer is not
# (it is an empty batch), nor are bytes after a valid frame.
SINGLE_FRAME_ERRORS = [
    c
    for c in INVALID
    if c["function"] == "decode" and c["reason"] != "trailing_data" and c["input_hex"]
]
BATCH_ERRORS = [c for c in INVALID if c["reason"] != "trailing_data" and c["input_hex"]]


@pytest.mark.parametrize("case", SINGLE_FRAME_ERRORS, ids=[c["name"] for c in SINGLE_FRAME_ERRORS])
def test_invalid_single_frame_fails_the_same_as_a_batch(codec: Codec, case: dict[str, Any]) -> None:
    data = bytes.fromhex(case["input_hex"])
    with pytest.raises(codec.decode_error) as caught:
        codec.decode_batch(data, case["max_frame_size"])
    error: Any = caught.value
    expected = (case["reason"], case["offset"], case["frame_offset"])
    assert (error.reason, error.offset, error.frame_offset) == expected


def test_every_reason_is_covered() -> None:
    reasons = {case["reason"] for case in INVALID}
    assert reasons == set(reference.REASONS)


@pytest.mark.parametrize("case", BATCH_ERRORS, ids=[c["name"] for c in BATCH_ERRORS])
def test_kaelix_message_batch_fails_like_decode_batch(
    kaelix: ModuleType, case: dict[str, Any]
) -> None:
    data = bytes.fromhex(case["input_hex"])
    with pytest.raises(kaelix.DecodeError) as caught:
        kaelix.MessageBatch.from_bytes(data, max_frame_size=case["max_frame_size"])
    error = caught.value
    expected = (case["reason"], case["offset"], case["frame_offset"])
    assert (error.reason, error.offset, error.frame_offset) == expected


# --------------------------------------------------------------------------------------------
# crc32c.json
# --------------------------------------------------------------------------------------------


def _crc_cases() -> list[tuple[str, bytes, int, int]]:
    """(id, data, starting value, expected crc) for every entry of crc32c.json."""
    cases = [
        (c["name"], bytes.fromhex(c["data_hex"]), 0, c["crc"]) for c in CRC32C["known_answers"]
    ]
    cases += [
        (f"lcg_{c['length']}", lcg_bytes(c["length"], c["seed"]), 0, c["crc"])
        for c in CRC32C["generated"]
    ]
    cases += [
        (f"value_{c['name']}", bytes.fromhex(c["data_hex"]), c["value"], c["crc"])
        for c in CRC32C["with_value"]
    ]
    return cases


CRC_CASES = _crc_cases()
crc_cases = pytest.mark.parametrize(
    ("data", "value", "expected"), [c[1:] for c in CRC_CASES], ids=[c[0] for c in CRC_CASES]
)
continuation_cases = pytest.mark.parametrize(
    "case", CRC32C["continuation"], ids=[c["name"] for c in CRC32C["continuation"]]
)

CrcFunction = Callable[..., int]


CRC_IMPLEMENTATIONS = ["table", "sse4.2", "avx512-vpclmulqdq", "armv8"]


def _crc_implementations_here() -> list[str]:
    """The implementations this CPU and build have (each is run by name below)."""
    try:
        from kaelix._codec import _crc32c_using
    except ImportError:  # kaelix not built: the kaelix cases fail in _kaelix() instead
        return ["table"]
    return [name for name in CRC_IMPLEMENTATIONS if _crc32c_using(name, b"") is not None]


@pytest.fixture(params=["reference", "kaelix", *_crc_implementations_here()], scope="module")
def crc_function(request: pytest.FixtureRequest) -> CrcFunction:
    """The reference, kaelix's dispatching crc32c, and each implementation kaelix has on
    this CPU, run by name."""
    if request.param == "reference":
        return reference.crc32c
    kaelix = _kaelix()
    if request.param == "kaelix":
        dispatching: CrcFunction = kaelix.crc32c
        return dispatching
    return functools.partial(kaelix._codec._crc32c_using, request.param)


@crc_cases
def test_crc32c_known_answer(
    crc_function: CrcFunction, data: bytes, value: int, expected: int
) -> None:
    assert crc_function(data, value) == expected


@continuation_cases
def test_crc32c_continuation(crc_function: CrcFunction, case: dict[str, Any]) -> None:
    running = 0
    for part in case["parts_hex"]:
        running = crc_function(bytes.fromhex(part), running)
    assert running == case["crc"]
    assert crc_function(b"".join(bytes.fromhex(p) for p in case["parts_hex"]), 0) == case["crc"]


def test_crc32c_default_value_is_zero(crc_function: CrcFunction) -> None:
    assert crc_function(b"123456789") == 0xE3069283


@crc_cases
def test_crc32c_package_agrees(data: bytes, value: int, expected: int) -> None:
    """The vectors against the ``crc32c`` package (in the test extra)."""
    crc32c = pytest.importorskip("crc32c")
    assert crc32c.crc32c(data, value) == expected


def test_reference_crc32c_agrees_with_the_package_on_random_data() -> None:
    crc32c = pytest.importorskip("crc32c")
    rng = random.Random(20240601)
    for _ in range(200):
        data = rng.randbytes(rng.randrange(0, 600))
        value = rng.randrange(2**32)
        assert reference.crc32c(data, value) == crc32c.crc32c(data, value)


def test_kaelix_crc32c_implementation_is_named(kaelix: ModuleType) -> None:
    assert kaelix.crc32c_implementation() in CRC_IMPLEMENTATIONS


def test_lcg_description_matches_the_generator() -> None:
    """The first bytes of the generator, pinned so a reader can check an independent port."""
    assert "6364136223846793005" in CRC32C["generator"]
    assert lcg_bytes(4, 0) == bytes([0x14, 0x1A, 0x9A, 0x66])


# --------------------------------------------------------------------------------------------
# The files are what the generator writes
# --------------------------------------------------------------------------------------------


def test_reference_regenerates_the_committed_vectors() -> None:
    spec = importlib.util.spec_from_file_location("make_vectors", VECTORS / "make_vectors.py")
    assert spec is not None and spec.loader is not None
    make_vectors = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_vectors)
    for name, text in make_vectors.documents().items():
        assert (VECTORS / name).read_text(encoding="utf-8") == text, f"{name} is stale"
