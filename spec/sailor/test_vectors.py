"""Known-answer vectors recorded from the Node sailor 2.7.8 (copied into spec/sailor/vectors/), byte for byte.

Covers docs/platform-contract.md §13 checks 1–6: v1/v2 encryption and decryption, the padding edge, the
cross-language sailor-jvm string, the error envelope, and IV validation.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from elasticio_sailor.crypto import DecryptError, MessageCipher, dumps
from elasticio_sailor.execution import error_envelope
from elasticio_sailor.messages import format_error
from elasticio_sailor.settings import SettingsError, load_settings

VECTORS = Path(__file__).resolve().parent / "vectors"


def _concatenated_json(path: Path) -> list[dict[str, Any]]:
    text, decoder, pos = path.read_text(encoding="utf-8"), json.JSONDecoder(), 0
    out: list[dict[str, Any]] = []
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return out
        obj, pos = decoder.raw_decode(text, pos)
        out.append(obj)


ENCRYPTION = _concatenated_json(VECTORS / "vectors.json")
ERRORS = json.loads((VECTORS / "errvec.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("vec", ENCRYPTION, ids=[v["label"] for v in ENCRYPTION])
def test_given_node_vector_when_encrypting_its_plaintext_then_amqp_body_is_identical(vec: dict[str, Any]) -> None:
    cipher = MessageCipher(vec["password"], vec["iv"])
    obj = json.loads(vec["plaintext"])
    assert dumps(obj) == vec["plaintext"].encode("utf-8")
    body = cipher.encrypt(obj, vec["protocolVersion"])
    assert body.hex() == vec["amqpBodyBytesHex"]
    assert cipher.encrypt_bytes(vec["plaintext"].encode("utf-8")).hex() == vec["rawCiphertextHex"]


@pytest.mark.parametrize("vec", ENCRYPTION, ids=[v["label"] for v in ENCRYPTION])
def test_given_node_amqp_body_when_decrypting_then_original_object(vec: dict[str, Any]) -> None:
    cipher = MessageCipher(vec["password"], vec["iv"])
    body = bytes.fromhex(vec["amqpBodyBytesHex"])
    assert cipher.decrypt(body, vec["protocolVersion"]) == json.loads(vec["plaintext"])


def test_given_full_block_plaintext_when_encrypting_then_a_whole_padding_block_is_added() -> None:
    vec = next(v for v in ENCRYPTION if v["label"].startswith("vector3"))
    raw = MessageCipher(vec["password"], vec["iv"]).encrypt_bytes(vec["plaintext"].encode())
    assert len(vec["plaintext"].encode()) == 32
    assert len(raw) == 48
    assert raw.hex() == vec["rawCiphertextHex"]


def test_given_sailor_jvm_cross_language_string_when_decrypting_then_published_object() -> None:
    cipher = MessageCipher("testCryptoPassword", "iv=any16_symbols")
    body = b"vSx5ntK2UdYh2Wjcdy8rgM7Yz5a/H8koXKtwNI0FL/Y9QiQFcUrtT4HJUkYXACNL"
    assert cipher.decrypt(body, 1) == {"body": {"someKey": "someValue"}}
    assert cipher.encrypt({"body": {"someKey": "someValue"}}, 1) == body


@pytest.mark.parametrize("pv", [1, 2])
def test_given_boom_error_when_building_envelope_then_byte_identical_to_node(pv: int) -> None:
    vec1 = ENCRYPTION[0]
    cipher = MessageCipher(vec1["password"], vec1["iv"])
    incoming = cipher.encrypt(json.loads(vec1["plaintext"]), pv)
    err = format_error({"name": "Error", "message": "Boom", "stack": "Error: Boom\n    at step"})
    body, bare = error_envelope(cipher, err, incoming, pv)
    assert body == ERRORS[0]["body"].encode("utf-8")
    assert body == ERRORS[1]["body"].encode("utf-8")
    # the reply_to copy carries only the bare encrypted error
    assert bare.encode("ascii") == ERRORS[2]["body"].encode("ascii")
    assert ERRORS[2]["headers"]["x-eio-error-response"] is True


def test_given_start_up_error_when_building_envelope_then_no_error_input() -> None:
    cipher = MessageCipher("testCryptoPassword", "iv=any16_symbols")
    body, bare = error_envelope(cipher, format_error(RuntimeError("OMG")), None, 1)
    envelope = json.loads(body)
    assert list(envelope) == ["error"]
    assert cipher.decrypt(bare.encode(), 1)["message"] == "OMG"


def test_given_no_password_when_encrypting_then_json_is_sent_as_is_like_node() -> None:
    assert MessageCipher(None, None).encrypt({"a": 1}, 1) == b"eyJhIjoxfQ=="


@pytest.mark.parametrize(
    "iv, ok", [("ü" * 8, True), ("ü" * 16, False), ("short", False), ("0123456789abcdef", True)]
)
def test_given_iv_when_loading_settings_then_only_16_utf8_bytes_are_accepted(iv: str, ok: bool) -> None:
    env = {f"ELASTICIO_{k}": "x" for k in (
        "FLOW_ID", "EXEC_ID", "STEP_ID", "CONTAINER_ID", "WORKSPACE_ID", "USER_ID", "COMP_ID", "FUNCTION",
        "API_URI", "API_USERNAME", "API_KEY", "AMQP_URI", "LISTEN_MESSAGES_ON", "PUBLISH_MESSAGES_TO",
        "DATA_ROUTING_KEY", "ERROR_ROUTING_KEY", "REBOUND_ROUTING_KEY", "SNAPSHOT_ROUTING_KEY",
        "MESSAGE_CRYPTO_PASSWORD")}
    env["ELASTICIO_MESSAGE_CRYPTO_IV"] = iv
    if ok:
        assert load_settings(env).MESSAGE_CRYPTO_IV == iv
        MessageCipher("p", iv)
    else:
        with pytest.raises(SettingsError, match="MESSAGE_CRYPTO_IV"):
            load_settings(env)
        with pytest.raises(ValueError):
            MessageCipher("p", iv)


@pytest.mark.parametrize("body", [b"not base64 !!", base64.b64encode(b"x" * 16), base64.b64encode(b"")])
def test_given_garbage_body_when_decrypting_then_decrypt_error(body: bytes) -> None:
    with pytest.raises(DecryptError):
        MessageCipher("testCryptoPassword", "iv=any16_symbols").decrypt(body, 1)
