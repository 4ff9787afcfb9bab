"""Upstream scalars as proto3 JSON reads them, and the codec's bounded memory of unknown
names. Protobuf's own JSON parser is the answer for every number form the mapping allows
(numbers, numbers in strings, exponents, NaN/Infinity), so a vendor that quotes its
numbers does not fail a whole answer."""

from __future__ import annotations

import json
import logging
import math

import pytest
from google.protobuf import json_format, wrappers_pb2
from openframe.v1 import devices_pb2

from adapter.transcoding.json_codec import UNKNOWN_LOGGED, JsonCodec
from adapter.transcoding.json_values import MalformedPayloadError, dec_float, dec_int

INTEGERS = [12, -3, 0, "12", "-3", "+5", "0", 1.0, 100.0, "1e2", "1E2", "-2e3", "1.0", "9007199254740993"]
FLOATS = [1.5, 2, -0.25, "1.5", "2", "-0.25", "1e2", "1.5E-3", "1e400", "NaN", "Infinity", "-Infinity"]

NOT_INTEGERS = [1.5, "1.5", "1e-2", "abc", "", "0x10", "NaN", "1e400", True, None, [1], {"a": 1}]
NOT_FLOATS = ["abc", "", "nan", "inf", "1.5.2", ".5", "1.", "0x10", "--1", True, None, [1.5], {"a": 1}]


def protobuf_reads(value: object, message: type) -> object:
    return json_format.Parse(json.dumps(value), message()).value


@pytest.mark.parametrize("value", INTEGERS)
def test_integers_read_as_protobuf_reads_them(value: object) -> None:
    assert dec_int(value, "n") == protobuf_reads(value, wrappers_pb2.Int64Value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", FLOATS)
def test_floats_read_as_protobuf_reads_them(value: object) -> None:
    ours, theirs = dec_float(value, "x"), protobuf_reads(value, wrappers_pb2.DoubleValue)  # type: ignore[arg-type]
    assert ours == theirs or (math.isnan(ours) and math.isnan(theirs))  # type: ignore[arg-type]


@pytest.mark.parametrize("value", NOT_INTEGERS)
def test_what_is_not_an_integer_is_refused_naming_the_field(value: object) -> None:
    with pytest.raises(MalformedPayloadError) as caught:
        dec_int(value, "device.ram_gb")  # type: ignore[arg-type]
    assert caught.value.path == "device.ram_gb"


@pytest.mark.parametrize("value", NOT_FLOATS)
def test_what_is_not_a_number_is_refused_naming_the_field(value: object) -> None:
    with pytest.raises(MalformedPayloadError) as caught:
        dec_float(value, "device.disk_free_gb")  # type: ignore[arg-type]
    assert caught.value.path == "device.disk_free_gb"


def test_unknown_fields_and_enum_values_are_logged_a_bounded_number_of_times(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # An upstream that sends a new unknown key and enum spelling in every answer must
    # neither grow the codec's memory of them without bound nor fill the log.
    codec = JsonCodec()
    with caplog.at_level(logging.INFO, logger="adapter.transcoding.json_codec"):
        for n in range(3 * UNKNOWN_LOGGED):
            answer = {"id": f"d{n}", f"extra_{n}": 1, "status": f"weird_{n}"}
            device = codec.decode(devices_pb2.Device, answer)
            assert device.id == f"d{n}" and device.status == 0  # decoded all the same
            codec.decode(devices_pb2.Device, {"id": "again", "extra_0": 1, "status": "weird_0"})
    fields = [r for r in caplog.records if "unknown to" in r.getMessage()]
    values = [r for r in caplog.records if "mapped to 0" in r.getMessage()]
    assert len(fields) == len(values) == UNKNOWN_LOGGED  # each logged once, up to the bound
    assert "further ones are not logged" in fields[-1].getMessage()
    assert "further ones are not logged" in values[-1].getMessage()
