"""JSON bodies: base64 decoding (padding, line breaks, data URLs, garbage, size) and their body limit."""

from __future__ import annotations

import base64

import pytest

from app.api.json_uploads import JSON_OVERHEAD, base64_length, decode_base64, json_upload_limit
from app.core.errors import InvalidBase64Error, UploadTooLargeError

DATA = bytes(range(256)) * 3 + b"xy"  # 770 bytes: its base64 ends in padding


def test_standard_base64_decodes() -> None:
    text = base64.b64encode(DATA).decode()
    assert text.endswith("=")
    assert decode_base64(text, max_upload_bytes=10_000) == DATA


@pytest.mark.parametrize(
    "transform",
    [
        lambda text: text.rstrip("="),  # padding left out
        lambda text: "\n".join(text[i : i + 76] for i in range(0, len(text), 76)) + "\n",  # `base64`
        lambda text: f"data:image/png;base64,{text}",  # a browser's data URL
    ],
    ids=["no-padding", "line-breaks", "data-url"],
)
def test_common_variants_decode(transform) -> None:
    assert decode_base64(transform(base64.b64encode(DATA).decode()), max_upload_bytes=10_000) == DATA


@pytest.mark.parametrize(
    "text",
    ["not base64!", "YWJj$", "a", "YWJjZA===x", "éé", base64.urlsafe_b64encode(b"\xfb\xff\xfe").decode()],
    ids=["punctuation", "dollar", "one-char", "junk-after-padding", "non-ascii", "urlsafe-alphabet"],
)
def test_anything_else_is_invalid_base64(text: str) -> None:
    with pytest.raises(InvalidBase64Error) as caught:
        decode_base64(text, max_upload_bytes=10_000)
    assert caught.value.status_code == 400 and caught.value.code == "invalid_base64"


def test_the_file_limit_holds_for_the_decoded_bytes() -> None:
    text = base64.b64encode(DATA).decode()
    assert decode_base64(text, max_upload_bytes=len(DATA)) == DATA
    with pytest.raises(UploadTooLargeError):
        decode_base64(text, max_upload_bytes=len(DATA) - 1)


def test_a_huge_text_is_refused_before_it_is_decoded() -> None:
    with pytest.raises(UploadTooLargeError):
        decode_base64("!" * 100_000, max_upload_bytes=1024)  # not base64 either: the size is seen first


def test_the_json_limit_is_the_base64_of_the_largest_file_plus_overhead_in_whole_kib() -> None:
    assert base64_length(3) == 4 and base64_length(4) == 8 and base64_length(0) == 0
    for size in (1024, 4096, 10 * 1024 * 1024, 12_345_677):
        limit = json_upload_limit(size)
        assert limit % 1024 == 0
        assert base64_length(size) + JSON_OVERHEAD <= limit < base64_length(size) + JSON_OVERHEAD + 1024
        assert limit > size * 4 / 3
