"""The long-lived per-thread cipher contexts (crypto.py) give exactly the bytes of a fresh context per message."""

from __future__ import annotations

import hashlib
import os
import random
import threading

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from elasticio_sailor.crypto import DecryptError, MessageCipher

PASSWORD, IV = "peer-crypto-password", "0123456789abcdef"


def fresh_context_ciphertext(plaintext: bytes) -> bytes:
    """AES-256-CBC/PKCS#7 with a new context, the way the Node sailor's crypto.createCipheriv does it."""
    key = hashlib.sha256(PASSWORD.encode()).digest()
    pad = 16 - len(plaintext) % 16
    enc = Cipher(algorithms.AES(key), modes.CBC(IV.encode())).encryptor()
    return enc.update(plaintext + bytes((pad,)) * pad) + enc.finalize()


def test_given_messages_of_every_length_in_a_row_when_encrypting_then_each_matches_a_fresh_context() -> None:
    cipher = MessageCipher(PASSWORD, IV)
    rng = random.Random(7)
    for size in [*range(0, 70), 1000, 4095, 4096, 65_537]:
        plaintext = rng.randbytes(size)
        ciphertext = cipher.encrypt_bytes(plaintext)
        assert ciphertext == fresh_context_ciphertext(plaintext), size
        assert cipher.decrypt_bytes(ciphertext) == plaintext


def test_given_a_rejected_ciphertext_when_decrypting_the_next_message_then_it_still_decrypts() -> None:
    cipher = MessageCipher(PASSWORD, IV)
    good = fresh_context_ciphertext(b'{"body":{"i":1}}')
    bad_padding = fresh_context_ciphertext(b"x" * 16)[:16]  # first block only: its padding byte is garbage
    with pytest.raises(DecryptError):
        cipher.decrypt_bytes(bad_padding)
    with pytest.raises(DecryptError):
        cipher.decrypt_bytes(good[:-1])
    assert cipher.decrypt_bytes(good) == b'{"body":{"i":1}}'


def test_given_threads_sharing_one_cipher_when_encrypting_at_once_then_every_ciphertext_is_exact() -> None:
    cipher = MessageCipher(PASSWORD, IV)
    wrong: list[int] = []
    start = threading.Barrier(4)

    def work() -> None:
        start.wait()
        for _ in range(300):
            plaintext = os.urandom(random.randrange(0, 300))
            ciphertext = cipher.encrypt_bytes(plaintext)
            if ciphertext != fresh_context_ciphertext(plaintext) or cipher.decrypt_bytes(ciphertext) != plaintext:
                wrong.append(len(plaintext))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert wrong == []
