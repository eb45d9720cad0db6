"""Regenerate the golden vectors of the frame format (version 1) from ``tests/reference.py``.

Writes, next to this script:

- ``frames.json``: valid messages and the exact frames they encode to;
- ``invalid.json``: malformed inputs and the exact error (reason, offset) each must give;
- ``crc32c.json``: CRC-32C known answers.

Run ``python tests/vectors/make_vectors.py`` to write them and ``... --check`` to verify that
the committed files are exactly what the reference produces. The files pin the format: once
committed they change only together with a new version number (docs/wire-format.md).

This script imports only the reference and the standard library, never ``kaelix``.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

VECTORS_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(VECTORS_DIR.parent))

import reference  # noqa: E402  (lives one folder up, in tests/)

DEFAULT_MAX = reference.DEFAULT_MAX_FRAME_SIZE

# --------------------------------------------------------------------------------------------
# Deterministic bytes
# --------------------------------------------------------------------------------------------

LCG_MULTIPLIER = 6364136223846793005
LCG_INCREMENT = 1442695040888963407
LCG_DESCRIPTION = (
    "64-bit LCG (Knuth's MMIX constants): state = seed; for each byte, "
    "state = (6364136223846793005 * state + 1442695040888963407) mod 2**64, "
    "then the byte is state >> 56 (the top 8 bits of the new state)."
)


def lcg_bytes(length: int, seed: int) -> bytes:
    """``length`` bytes from the generator that ``LCG_DESCRIPTION`` describes."""
    state = seed
    out = bytearray(length)
    for index in range(length):
        state = (LCG_MULTIPLIER * state + LCG_INCREMENT) & 0xFFFFFFFFFFFFFFFF
        out[index] = state >> 56
    return bytes(out)


# --------------------------------------------------------------------------------------------
# frames.json
# --------------------------------------------------------------------------------------------


def message(
    payload: bytes = b"",
    *,
    key: bytes | None = None,
    headers: dict[str, bytes] | None = None,
    partition: int = 0,
    producer_id: int = 0,
    sequence: int = 0,
    timestamp_ns: int = 0,
) -> dict[str, Any]:
    """A message as the keyword arguments of ``reference.encode``."""
    return {
        "payload": payload,
        "key": key,
        "headers": {} if headers is None else headers,
        "partition": partition,
        "producer_id": producer_id,
        "sequence": sequence,
        "timestamp_ns": timestamp_ns,
    }


def message_to_json(fields: dict[str, Any]) -> dict[str, Any]:
    """The JSON form of a message: bytes as lowercase hex, headers in encoding order."""
    return {
        "payload_hex": fields["payload"].hex(),
        "key_hex": None if fields["key"] is None else fields["key"].hex(),
        "headers": {name: value.hex() for name, value in fields["headers"].items()},
        "partition": fields["partition"],
        "producer_id": fields["producer_id"],
        "sequence": fields["sequence"],
        "timestamp_ns": fields["timestamp_ns"],
    }


WORKED_EXAMPLE = message(
    b"hello", key=b"k", headers={"h": b"v"}, partition=2, producer_id=7, sequence=9, timestamp_ns=1
)


def frame_messages() -> list[tuple[str, dict[str, Any]]]:
    """The valid cases, the spec's worked example first."""
    cases: list[tuple[str, dict[str, Any]]] = [
        ("worked_example", WORKED_EXAMPLE),
        ("empty_message", message()),
        ("no_key", message(b"x")),
        ("empty_key", message(b"x", key=b"")),
        ("key_only", message(key=b"key")),
        (
            "max_unsigned_fields",
            message(
                b"max",
                partition=2**32 - 1,
                producer_id=2**64 - 1,
                sequence=2**64 - 1,
                timestamp_ns=2**63 - 1,
            ),
        ),
        ("timestamp_min", message(b"min", timestamp_ns=-(2**63))),
        ("timestamp_minus_one", message(b"-1", timestamp_ns=-1)),
        (
            "distinct_byte_patterns_per_field",
            message(
                b"fields",
                partition=0x01020304,
                producer_id=0x1112131415161718,
                sequence=0x2122232425262728,
                timestamp_ns=-0x3132333435363738,
            ),
        ),
    ]
    # Payload sizes 0 to 9 give every padding amount 0 to 7 (and 0 and 7 twice).
    for size in range(10):
        payload = bytes(range(0x61, 0x61 + size))
        cases.append((f"payload_{size}_bytes_padding_{(8 - size % 8) % 8}", message(payload)))
    cases += [
        (
            "unicode_header_names",
            message(b"u", headers={"é": b"\x01", "日本": b"\x02", "🚀": b"\x03", "a\x00b": b""}),
        ),
        (
            "header_names_differing_only_by_normalization",
            message(headers={"\u00e9": b"precomposed", "e\u0301": b"decomposed"}),
        ),
        (
            "header_name_255_bytes",
            message(headers={"n" * 255: b"ascii", "é" * 127 + "x": b"two-byte"}),
        ),
        ("empty_header_value", message(b"p", headers={"empty": b""})),
        ("many_headers", message(b"m", headers={f"h{i:03d}": bytes([i]) for i in range(100)})),
        ("long_header_value", message(headers={"v": lcg_bytes(300, 3)})),
        ("long_key", message(b"k", key=lcg_bytes(1000, 4))),
        ("payload_all_byte_values", message(bytes(range(256)))),
        (
            "payload_4_kib_with_key_and_headers",
            message(
                lcg_bytes(4096, 5),
                key=b"key-4k",
                headers={"content-type": b"application/octet-stream", "trace": lcg_bytes(16, 6)},
                partition=17,
                producer_id=123456789,
                sequence=987654321,
                timestamp_ns=1_700_000_000_000_000_000,
            ),
        ),
    ]
    return cases


def frame_cases() -> list[dict[str, Any]]:
    """The contents of frames.json."""
    out: list[dict[str, Any]] = []
    for name, fields in frame_messages():
        frame = reference.encode(**fields)
        assert reference.decode(frame) == fields, name
        out.append({"name": name, "message": message_to_json(fields), "frame_hex": frame.hex()})
    worked = bytes.fromhex(out[0]["frame_hex"])
    assert len(worked) == 72, "the spec says the worked example is 72 bytes"
    return out


# --------------------------------------------------------------------------------------------
# invalid.json
# --------------------------------------------------------------------------------------------


def patched(frame: bytes, offset: int, fmt: str, value: int) -> bytes:
    """``frame`` with ``struct.pack(fmt, value)`` written at ``offset``."""
    buffer = bytearray(frame)
    struct.pack_into(fmt, buffer, offset, value)
    return bytes(buffer)


def xored(frame: bytes, offset: int, mask: int) -> bytes:
    """``frame`` with the byte at ``offset`` xor-ed with ``mask``."""
    buffer = bytearray(frame)
    buffer[offset] ^= mask
    return bytes(buffer)


def raw_headers_frame(entries: Sequence[bytes], header_count: int, *, key: bytes | None) -> bytes:
    """A frame with a correct checksum around a hand-made headers section."""
    return reference.assemble(
        payload=b"pay",
        key=key,
        headers_section=b"".join(entries),
        header_count=header_count,
        partition=1,
        producer_id=2,
        sequence=3,
        timestamp_ns=4,
    )


def entry(name: bytes, value: bytes = b"v") -> bytes:
    """One raw headers-section entry."""
    return reference.encode_header_entry(name, value)


# Frames the invalid cases start from.
W = reference.encode(**WORKED_EXAMPLE)  # key at 56, headers section at 57..65, payload at 65..70
W_NO_KEY = reference.encode(**message(b"hello", headers={"h": b"v"}, partition=2))
W_16 = reference.encode(**message(b"0123456789abcdef"))  # exactly 72 bytes, no padding
W_BIG_VALUE = reference.encode(**message(headers={"h": lcg_bytes(300, 7)}))  # 368 bytes
W_HEADERS = 57  # start of W's headers section (after the 1-byte key)
NO_KEY_HEADERS = 56  # start of the headers section of a frame without key
FRAME_LENGTH = reference.OFFSET_FRAME_LENGTH

InvalidCase = tuple[str, bytes, int, str, str, int, int]


def invalid_inputs() -> list[InvalidCase]:
    """(name, input, max_frame_size, function, reason, offset, frame_offset), spec order."""
    d, b = "decode", "decode_batch"
    u32, u16 = "<I", "<H"
    fixed_up = reference.with_crc
    return [
        # 1. Fewer than 56 bytes.
        ("empty_input", b"", DEFAULT_MAX, d, "truncated", 0, 0),
        ("magic_prefix_3_bytes", b"KLX", DEFAULT_MAX, d, "truncated", 3, 0),
        ("magic_prefix_3_bytes_batch", b"KLX", DEFAULT_MAX, b, "truncated", 3, 0),
        ("three_wrong_bytes", b"ABC", DEFAULT_MAX, d, "bad_magic", 0, 0),
        ("one_wrong_byte", b"X", DEFAULT_MAX, d, "bad_magic", 0, 0),
        ("short_wrong_fourth_magic_byte", b"KLXG" + bytes(20), DEFAULT_MAX, d, "bad_magic", 0, 0),
        ("fixed_header_truncated", W[:55], DEFAULT_MAX, d, "truncated", 55, 0),
        (
            "short_buffer_wins_over_bad_version",
            patched(W, 8, "<B", 9)[:40],
            DEFAULT_MAX,
            d,
            "truncated",
            40,
            0,
        ),
        # 2. Magic.
        ("bad_magic", b"KLXG" + W[4:], DEFAULT_MAX, d, "bad_magic", 0, 0),
        ("bad_magic_lowercase", b"klxf" + W[4:], DEFAULT_MAX, d, "bad_magic", 0, 0),
        # 3. Version.
        ("version_0", patched(W, 8, "<B", 0), DEFAULT_MAX, d, "unsupported_version", 8, 0),
        ("version_2", patched(W, 8, "<B", 2), DEFAULT_MAX, d, "unsupported_version", 8, 0),
        (
            "version_checked_before_flags",
            patched(patched(W, 8, "<B", 2), 9, "<B", 0x02),
            DEFAULT_MAX,
            d,
            "unsupported_version",
            8,
            0,
        ),
        # 4. Flags.
        ("reserved_flag_bit_1", patched(W, 9, "<B", 0x03), DEFAULT_MAX, d, "invalid_flags", 9, 0),
        ("reserved_flag_bit_7", patched(W, 9, "<B", 0x80), DEFAULT_MAX, d, "invalid_flags", 9, 0),
        (
            "flags_checked_before_frame_length",
            patched(patched(W, 9, "<B", 0x02), FRAME_LENGTH, u32, 0),
            DEFAULT_MAX,
            d,
            "invalid_flags",
            9,
            0,
        ),
        # 5. frame_length range.
        *[
            (
                f"frame_length_{value}",
                patched(W, FRAME_LENGTH, u32, value),
                DEFAULT_MAX,
                d,
                "length_out_of_range",
                12,
                0,
            )
            for value in (0, 48, 57, 71)
        ],
        ("frame_length_over_max_frame_size", W, 64, d, "length_out_of_range", 12, 0),
        (
            "frame_length_huge_default_max",
            patched(W, FRAME_LENGTH, u32, 0xFFFFFFF8),
            DEFAULT_MAX,
            d,
            "length_out_of_range",
            12,
            0,
        ),
        # 6. frame_length against the buffer.
        (
            "frame_length_huge_within_max_is_truncated",
            patched(W, FRAME_LENGTH, u32, 0xFFFFFFF8),
            reference.LARGEST_MAX_FRAME_SIZE,
            d,
            "truncated",
            72,
            0,
        ),
        ("truncated_body", W[:64], DEFAULT_MAX, d, "truncated", 64, 0),
        ("truncated_last_byte", W[:71], DEFAULT_MAX, d, "truncated", 71, 0),
        (
            "frame_length_past_buffer",
            patched(W, FRAME_LENGTH, u32, 80),
            DEFAULT_MAX,
            d,
            "truncated",
            72,
            0,
        ),
        # 7. Sections against frame_length (stale checksums: this check comes first).
        (
            "key_length_without_key_flag",
            patched(W_NO_KEY, 44, u32, 1),
            DEFAULT_MAX,
            d,
            "inconsistent_sections",
            44,
            0,
        ),
        (
            "sections_one_byte_too_long",
            patched(W, 52, u32, 8),
            DEFAULT_MAX,
            d,
            "inconsistent_sections",
            44,
            0,
        ),
        (
            "payload_length_max_u32",
            patched(W, 52, u32, 0xFFFFFFFF),
            DEFAULT_MAX,
            d,
            "inconsistent_sections",
            44,
            0,
        ),
        (
            "section_sum_wraps_to_a_valid_u32",  # 56 + 1 + 8 + 5 + 2**32 is 70 in 32 bits
            patched(patched(W, 44, u32, 1 + 2**31), 48, u32, 8 + 2**31),
            DEFAULT_MAX,
            d,
            "inconsistent_sections",
            44,
            0,
        ),
        (
            "sections_8_bytes_short_of_frame",
            patched(W_16, 52, u32, 8),
            DEFAULT_MAX,
            d,
            "inconsistent_sections",
            44,
            0,
        ),
        # 8. Checksum.
        (
            "checksum_mismatch_payload_bit",
            xored(W, 66, 0x01),
            DEFAULT_MAX,
            d,
            "checksum_mismatch",
            4,
            0,
        ),
        ("checksum_field_corrupt", xored(W, 4, 0x80), DEFAULT_MAX, d, "checksum_mismatch", 4, 0),
        (
            "checksum_mismatch_partition_bit",
            xored(W, 40, 0x10),
            DEFAULT_MAX,
            d,
            "checksum_mismatch",
            4,
            0,
        ),
        (
            "checksum_checked_before_padding",
            patched(W, 71, "<B", 1),
            DEFAULT_MAX,
            d,
            "checksum_mismatch",
            4,
            0,
        ),
        # 9. Padding (checksums recomputed so that the padding check is the one hit).
        (
            "nonzero_padding_last_byte",
            fixed_up(patched(W, 71, "<B", 1)),
            DEFAULT_MAX,
            d,
            "inconsistent_sections",
            71,
            0,
        ),
        (
            "payload_shrunk_into_padding",  # 7 bytes of "padding" that are "9abcdef"
            fixed_up(patched(W_16, 52, u32, 9)),
            DEFAULT_MAX,
            d,
            "inconsistent_sections",
            65,
            0,
        ),
        # 10. Headers section (checksums correct).
        (
            "header_name_length_0",
            fixed_up(patched(W, W_HEADERS, u16, 0)),
            DEFAULT_MAX,
            d,
            "invalid_header",
            W_HEADERS,
            0,
        ),
        (
            "header_name_length_256",  # the entry still fills the section exactly
            fixed_up(patched(patched(W_BIG_VALUE, 56, u16, 256), 58, u32, 45)),
            DEFAULT_MAX,
            d,
            "invalid_header",
            NO_KEY_HEADERS,
            0,
        ),
        (
            "header_entry_past_section_end",
            fixed_up(patched(W, W_HEADERS + 2, u32, 2)),
            DEFAULT_MAX,
            d,
            "invalid_header",
            W_HEADERS,
            0,
        ),
        (
            "header_value_length_max_u32",
            fixed_up(patched(W, W_HEADERS + 2, u32, 0xFFFFFFFF)),
            DEFAULT_MAX,
            d,
            "invalid_header",
            W_HEADERS,
            0,
        ),
        (
            "header_count_exceeds_entries",  # no bytes left for the second entry's lengths
            fixed_up(patched(W, reference.OFFSET_HEADER_COUNT, u16, 2)),
            DEFAULT_MAX,
            d,
            "invalid_header",
            W_HEADERS + 8,
            0,
        ),
        (
            "header_section_shorter_than_entry_lengths",
            raw_headers_frame([b"\x01\x00\x00\x00\x00"], 1, key=None),
            DEFAULT_MAX,
            d,
            "invalid_header",
            NO_KEY_HEADERS,
            0,
        ),
        *[
            (
                f"header_name_{label}",
                raw_headers_frame([entry(b"ok"), entry(bad_name)], 2, key=b""),
                DEFAULT_MAX,
                d,
                "invalid_header",
                NO_KEY_HEADERS + 9,  # the second entry: 6 + 2 + 1 bytes after the first
                0,
            )
            for label, bad_name in (
                ("invalid_utf8_ff", b"\xff"),
                ("utf8_surrogate", b"\xed\xa0\x80"),
                ("utf8_overlong_slash", b"\xc0\xaf"),
                ("utf8_truncated_sequence", b"\xe6\x97"),
                ("utf8_above_max_code_point", b"\xf4\x90\x80\x80"),
                ("utf8_lone_continuation_byte", b"a\x80"),
            )
        ],
        (
            "header_bytes_left_over",
            raw_headers_frame([entry(b"h"), b"\x00\x00"], 1, key=None),
            DEFAULT_MAX,
            d,
            "invalid_header",
            NO_KEY_HEADERS + 8,
            0,
        ),
        (
            "header_count_zero_with_nonempty_section",
            raw_headers_frame([entry(b"h")], 0, key=None),
            DEFAULT_MAX,
            d,
            "invalid_header",
            NO_KEY_HEADERS,
            0,
        ),
        (
            "duplicate_header_name",  # a, b, a: the third entry repeats the first
            raw_headers_frame([entry(b"a"), entry(b"b"), entry(b"a")], 3, key=None),
            DEFAULT_MAX,
            d,
            "invalid_header",
            NO_KEY_HEADERS + 16,
            0,
        ),
        (
            "duplicate_header_name_unicode",
            raw_headers_frame(
                [entry("日本".encode()), entry(b"x"), entry(b"y"), entry("日本".encode())],
                4,
                key=b"k",
            ),
            DEFAULT_MAX,
            d,
            "invalid_header",
            57 + 13 + 8 + 8,  # after a 13-byte entry and two 8-byte entries
            0,
        ),
        (
            "duplicate_first_repeat_in_byte_order",  # a, b, b, a: the second b, not the last a
            raw_headers_frame([entry(b"a"), entry(b"b"), entry(b"b"), entry(b"a")], 4, key=None),
            DEFAULT_MAX,
            d,
            "invalid_header",
            NO_KEY_HEADERS + 16,
            0,
        ),
        (
            "duplicate_among_40_headers",  # z00..z37, then z30 again, then z05 again
            raw_headers_frame(
                [entry(b"z%02d" % i) for i in range(38)] + [entry(b"z30"), entry(b"z05")],
                40,
                key=None,
            ),
            DEFAULT_MAX,
            d,
            "invalid_header",
            NO_KEY_HEADERS + 38 * 10,
            0,
        ),
        (
            "duplicate_checked_after_entry_structure",  # a, a, then a name of length 0
            raw_headers_frame([entry(b"a"), entry(b"a"), entry(b"")], 3, key=None),
            DEFAULT_MAX,
            d,
            "invalid_header",
            NO_KEY_HEADERS + 16,
            0,
        ),
        (
            "duplicate_checked_after_leftover_bytes",  # a, a, then one byte left over
            raw_headers_frame([entry(b"a"), entry(b"a"), b"\x00"], 2, key=None),
            DEFAULT_MAX,
            d,
            "invalid_header",
            NO_KEY_HEADERS + 16,
            0,
        ),
        # One frame only for decode.
        ("trailing_zero_byte", W + b"\x00", DEFAULT_MAX, d, "trailing_data", 72, 0),
        ("two_frames_for_decode", W + W, DEFAULT_MAX, d, "trailing_data", 72, 0),
        (
            "frame_error_wins_over_trailing_data",
            xored(W, 66, 0x01) + b"junk",
            DEFAULT_MAX,
            d,
            "checksum_mismatch",
            4,
            0,
        ),
        # Batches: offsets are absolute in the batch.
        (
            "batch_second_frame_checksum_mismatch",
            W + xored(W, 66, 0x01),
            DEFAULT_MAX,
            b,
            "checksum_mismatch",
            72 + 4,
            72,
        ),
        ("batch_partial_last_frame", W + W[:10], DEFAULT_MAX, b, "truncated", 82, 72),
        ("batch_one_garbage_byte_after_frame", W + b"\x00", DEFAULT_MAX, b, "bad_magic", 72, 72),
        ("batch_magic_prefix_after_frame", W + b"KL", DEFAULT_MAX, b, "truncated", 74, 72),
        (
            "batch_third_frame_invalid_header",
            W + W_NO_KEY + fixed_up(patched(W, W_HEADERS, u16, 0)),
            DEFAULT_MAX,
            b,
            "invalid_header",
            144 + W_HEADERS,
            144,
        ),
        (
            "batch_second_frame_over_max_frame_size",
            W + W_BIG_VALUE,
            100,
            b,
            "length_out_of_range",
            72 + 12,
            72,
        ),
        (
            "batch_second_frame_bad_version",
            W_16 + patched(W, 8, "<B", 3),
            DEFAULT_MAX,
            b,
            "unsupported_version",
            72 + 8,
            72,
        ),
    ]


def invalid_cases() -> list[dict[str, Any]]:
    """The contents of invalid.json, each case checked against the reference."""
    decoders: dict[str, Callable[[bytes, int], object]] = {
        "decode": reference.decode,
        "decode_batch": reference.decode_batch,
    }
    out = []
    names = set()
    for name, data, max_frame_size, function, reason, offset, frame_offset in invalid_inputs():
        assert name not in names, f"duplicate case name {name}"
        names.add(name)
        try:
            decoders[function](data, max_frame_size)
        except reference.RefDecodeError as error:
            got = (error.reason, error.offset, error.frame_offset)
            assert got == (reason, offset, frame_offset), f"{name}: reference says {got}"
        else:
            raise AssertionError(f"{name}: the reference accepts this input")
        out.append(
            {
                "name": name,
                "input_hex": data.hex(),
                "max_frame_size": max_frame_size,
                "function": function,
                "reason": reason,
                "offset": offset,
                "frame_offset": frame_offset,
            }
        )
    return out


# --------------------------------------------------------------------------------------------
# crc32c.json
# --------------------------------------------------------------------------------------------

ISCSI_READ_10_PDU = bytes.fromhex(
    "01c00000 00000000 00000000 00000000 14000000 00000400 00000014 00000018"
    " 28000000 00000000 02000000 00000000".replace(" ", "")
)

KNOWN_ANSWERS: list[tuple[str, bytes, int]] = [
    ("empty", b"", 0x00000000),
    ("check_string_123456789", b"123456789", 0xE3069283),
    ("rfc3720_32_bytes_of_0x00", bytes(32), 0x8A9136AA),
    ("rfc3720_32_bytes_of_0xff", b"\xff" * 32, 0x62A8AB43),
    ("rfc3720_32_bytes_ascending", bytes(range(32)), 0x46DD794E),
    ("rfc3720_32_bytes_descending", bytes(range(31, -1, -1)), 0x113FDB5C),
    ("rfc3720_iscsi_read_10_command_pdu", ISCSI_READ_10_PDU, 0xD9963A56),
]

GENERATED_LENGTHS = (1, 7, 8, 9, 255, 256, 257, 1000, 8191, 8192, 24577, 65536, 100003)


def crc32c_document() -> dict[str, Any]:
    """The contents of crc32c.json."""
    known = []
    for name, data, crc in KNOWN_ANSWERS:
        assert reference.crc32c(data) == crc, name
        known.append({"name": name, "data_hex": data.hex(), "crc": crc})
    generated = [
        {"length": length, "seed": length, "crc": reference.crc32c(lcg_bytes(length, length))}
        for length in GENERATED_LENGTHS
    ]
    split_parts = [lcg_bytes(1, 11), lcg_bytes(30, 12), lcg_bytes(97, 13)]
    continuation = []
    for name, parts in (
        ("check_string_split_4_5", [b"1234", b"56789"]),
        ("check_string_byte_by_byte", [bytes([byte]) for byte in b"123456789"]),
        ("lcg_parts_1_30_97", split_parts),
        ("empty_parts_between", [b"", b"abc", b"", b"defgh", b""]),
    ):
        running = 0
        for part in parts:
            running = reference.crc32c(part, running)
        assert running == reference.crc32c(b"".join(parts)), name
        continuation.append({"name": name, "parts_hex": [p.hex() for p in parts], "crc": running})
    with_value = [
        {"name": name, "data_hex": data.hex(), "value": value, "crc": reference.crc32c(data, value)}
        for name, data, value in (
            ("empty_keeps_value", b"", 0x12345678),
            ("empty_keeps_all_ones", b"", 0xFFFFFFFF),
            ("check_string_from_all_ones", b"123456789", 0xFFFFFFFF),
            ("check_string_from_arbitrary", b"123456789", 0xDEADBEEF),
        )
    ]
    return {
        "algorithm": (
            "CRC-32C (Castagnoli): reflected polynomial 0x82F63B78, initial value and final "
            "xor 0xFFFFFFFF (RFC 3720). 'value' continues a running checksum: "
            "crc32c(b, crc32c(a)) == crc32c(a + b)."
        ),
        "known_answers": known,
        "generator": LCG_DESCRIPTION,
        "generated": generated,
        "continuation": continuation,
        "with_value": with_value,
    }


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


def render(document: object) -> str:
    """Stable, pretty JSON: keys in insertion order (header order matters), UTF-8 names."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def documents() -> dict[str, str]:
    """File name -> exact text, for every golden file."""
    return {
        "frames.json": render(frame_cases()),
        "invalid.json": render(invalid_cases()),
        "crc32c.json": render(crc32c_document()),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Write the golden files, or with ``--check`` report any that differ."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args(argv)
    stale = []
    for name, text in documents().items():
        path = VECTORS_DIR / name
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    if stale:
        print(f"out of date: {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
