"""The test platform's own crypto reproduces the Node 2.7.8 vectors (docs/platform-contract.md §5.4).

The interop tests trust spec/support/platform.py to encrypt inputs and decrypt outputs; these
known answers, recorded from the Node sailor, show that trust is deserved.
"""

from __future__ import annotations

import json

from spec.support.platform import MessageCrypto, compact_json

V1_PLAIN = {"id": "f45be600-f770-11e6-b42d-b187bfbf19fd", "headers": {}, "body": {"message": "Just do it!"}}
V1_BODY = (
    b"XAIDMz+iF16oNeZEs52bHcfTzsH3AbWX0Sht0nz5I1ACor3dH91ovnWYGkg5nZQg5h9OtFtlzON67HG1Eapg6OcNVp+EShodv7xi"
    b"c0qzpH0G2mSGkMWxYY1fhbwsumYo"
)
V2_PLAIN = {
    "headers": {"x-eio-meta-trace-id": "t-1"},
    "body": {"name": "Jürgen", "n": 42, "f": 2.5, "ok": True, "arr": [1, None, "x"]},
    "passthrough": {},
}
V2_HEX = (
    "ce444a6c559b0c6744bf1650dc2062ef6040df5241f2f2edd0ba310da2e6d7f50f3e5ba08014e135712140e25e620f60"
    "2a44f1117f9ac208f851a22baabce5b9d3d421d4bebae279c2fca21e2f4e00b8b2c03886e68d3edd53df071636aea41c"
    "4d223324f27a2ee1e818bab2fb4756b1a2c46a28012e5f0778e04e767612b64bdc6eecebadf1474140a603d71b708a07"
)
ERRVEC_BODY = (
    b'{"error":"+PAlXNRj+5HdYNSuw3cyrfQX3jnCDlRzekSJ7R95fKNlOmW79FnFiNCDOdEzPxL+9qNUAXWwvNO+Nekvadx5v8bwnoeB'
    b'KaGAuoqOZItvQus=","errorInput":"' + V1_BODY + b'"}'
)


def test_given_vector_1_when_encoded_as_protocol_1_then_body_is_nodes_base64() -> None:
    crypto = MessageCrypto("testCryptoPassword", "iv=any16_symbols")
    assert crypto.encode(V1_PLAIN, 1) == V1_BODY
    assert crypto.decode(V1_BODY, 1) == V1_PLAIN


def test_given_vector_2_when_encoded_as_protocol_2_then_body_is_nodes_raw_ciphertext() -> None:
    crypto = MessageCrypto("pässwörd-2", "0123456789abcdef")
    assert len(compact_json(V2_PLAIN)) == 128
    assert crypto.encode(V2_PLAIN, 2) == bytes.fromhex(V2_HEX)
    assert crypto.decode(bytes.fromhex(V2_HEX), 2) == V2_PLAIN


def test_given_node_error_envelope_when_decoded_then_error_and_input_are_recovered() -> None:
    crypto = MessageCrypto("testCryptoPassword", "iv=any16_symbols")
    decoded = crypto.decode_error(ERRVEC_BODY)
    assert decoded == {
        "error": {"name": "Error", "message": "Boom", "stack": "Error: Boom\n    at step"},
        "errorInput": V1_PLAIN,
    }
    envelope = {
        "error": crypto.encode(decoded["error"], 1).decode(),
        "errorInput": V1_BODY.decode(),
    }
    assert json.dumps(envelope, separators=(",", ":")).encode() == ERRVEC_BODY
