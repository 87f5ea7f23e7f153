"""Helpers of the client tests: WAV files, interviews of known questions, certificates, ports."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from tests.conftest import load_mono, recordings

RATE = 16000
EMOTION_CODES = {"01": "NEU", "03": "HAP", "04": "SAD", "05": "ANG", "06": "FEA", "07": "DIS"}


def write_wav(path: Path, wave: np.ndarray, subtype: str = "PCM_16") -> Path:
    """``wave`` (16 kHz float) as a WAV file the standard library can read."""
    sf.write(path, wave, RATE, subtype=subtype)
    return path


def clip(emotion: str) -> Path:
    """The first test recording of an emotion (``"HAP"``, ...)."""
    return next(p for p in recordings() if EMOTION_CODES[p.name.split("-")[2]] == emotion)


@dataclass(frozen=True)
class Interview:
    """A recording made of clips of known emotions with silence between them."""

    path: Path
    questions: list[tuple[str, float, float, str]]  # id, start, end, emotion of the clip
    duration_s: float


def make_interview(folder: Path, emotions: list[str], gap_s: float = 1.0) -> Interview:
    """Concatenates one clip per emotion, ``gap_s`` of silence between them; question i spans clip i."""
    gap = np.zeros(round(gap_s * RATE), np.float32)
    parts, questions, t = [gap], [], gap_s
    for i, emotion in enumerate(emotions):
        wave = load_mono(clip(emotion))
        questions.append((f"q{i + 1}", round(t, 4), round(t + len(wave) / RATE, 4), emotion))
        parts += [wave, gap]
        t += (len(wave) + len(gap)) / RATE
    audio = np.concatenate(parts)
    return Interview(write_wav(folder / "interview.wav", audio), questions, len(audio) / RATE)


@dataclass(frozen=True)
class Pki:
    """A private CA, a server certificate for 127.0.0.1/localhost and a client certificate, as PEM files."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_pki(folder: Path) -> Pki:
    """Creates the CA and certificates with the ``cryptography`` package."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def issue(
        cn: str,
        key: ec.EllipticCurvePrivateKey,
        issuer: x509.Name,
        signer: ec.EllipticCurvePrivateKey,
        extensions: list[tuple[x509.ExtensionType, bool]],
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
        )
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical)
        return builder.sign(signer, hashes.SHA256())

    def save(stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
        cert_path, key_path = folder / f"{stem}.crt", folder / f"{stem}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        return cert_path, key_path

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = issue("test CA", ca_key, name("test CA"), ca_key, [(x509.BasicConstraints(ca=True, path_length=None), True)])
    server_key = ec.generate_private_key(ec.SECP256R1())
    san = x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    server = issue("localhost", server_key, ca.subject, ca_key, [(san, False)])
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = issue("interview-platform", client_key, ca.subject, ca_key, [])
    ca_path, _ = save("ca", ca, ca_key)
    server_paths = save("server", server, server_key)
    client_paths = save("client", client, client_key)
    return Pki(ca_path, *server_paths, *client_paths)
