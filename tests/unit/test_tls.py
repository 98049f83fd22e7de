"""TLS contexts from PEM files: settings, clear errors naming the file, the profile mapping."""

from __future__ import annotations

import os
import ssl
import subprocess
from pathlib import Path

import pytest

from runner.dicom.peer import Peer, TlsFiles
from runner.dicom.tls import client_context, server_context
from runner.errors import InputError
from runner.execute.peers import (
    check_tls,
    destination_peer,
    device_peer,
    device_peers,
    listener_tls,
)
from runner.morph.loaded import load_profile
from tests.certs import Certificates, make_certificates
from tests.profiles import profile_data, write_profile

pytestmark = pytest.mark.tls  # fails, not skips, under CI=true without openssl


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


def problem_of(error: pytest.ExceptionInfo[InputError]) -> tuple[str, str]:
    [problem] = error.value.problems
    return problem.path, problem.message


def test_client_context_verifies_the_server_and_requires_tls_1_2(certs: Certificates) -> None:
    context = client_context(certs.client_tls())
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname is False
    assert client_context(certs.client_tls(check_hostname=True)).check_hostname is True


def test_server_context_requires_client_certificates_only_when_asked(
        certs: Certificates) -> None:
    assert server_context(certs.server_tls(True)).verify_mode is ssl.CERT_REQUIRED
    assert server_context(certs.server_tls(False)).verify_mode is ssl.CERT_OPTIONAL
    without_ca = TlsFiles(certs.server.certificate, certs.server.key)
    assert server_context(without_ca).verify_mode is ssl.CERT_NONE
    assert server_context(without_ca).minimum_version is ssl.TLSVersion.TLSv1_2


def test_contexts_are_cached_and_rebuilt_when_a_file_changes(
        certs: Certificates, tmp_path: Path) -> None:
    key = tmp_path / "client.key"
    key.write_bytes(certs.client.key.read_bytes())
    files = TlsFiles(certs.client.certificate, key, certs.ca.certificate)
    first = client_context(files)
    assert client_context(files) is first
    stat = key.stat()
    os.utime(key, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert client_context(files) is not first


def test_missing_file_is_named(certs: Certificates, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.pem"
    with pytest.raises(InputError) as error:
        client_context(TlsFiles(missing, certs.client.key))
    path, message = problem_of(error)
    assert path == str(missing) and "cannot read" in message


def test_key_of_another_certificate_is_named_as_mismatched(certs: Certificates) -> None:
    with pytest.raises(InputError) as error:
        server_context(TlsFiles(certs.server.certificate, certs.client.key))
    path, message = problem_of(error)
    assert path == str(certs.client.key) and "does not match" in message


def test_file_that_is_not_pem_is_named(certs: Certificates, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    for files, named in [(TlsFiles(garbage, certs.client.key), garbage),
                         (TlsFiles(certs.client.certificate, garbage), garbage),
                         (TlsFiles(certs.client.certificate, certs.client.key, garbage), garbage)]:
        with pytest.raises(InputError) as error:
            client_context(files)
        assert problem_of(error)[0] == str(named)


def test_broken_certificate_body_is_named(certs: Certificates, tmp_path: Path) -> None:
    broken = tmp_path / "broken.pem"
    broken.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    with pytest.raises(InputError) as error:
        client_context(TlsFiles(broken, certs.client.key))
    assert problem_of(error)[0] == str(broken)


def test_encrypted_key_is_refused_without_prompting(certs: Certificates, tmp_path: Path) -> None:
    encrypted = tmp_path / "encrypted.key"
    subprocess.run(["openssl", "pkey", "-in", str(certs.client.key), "-aes256", "-passout",
                    "pass:secret", "-out", str(encrypted)], check=True, capture_output=True)
    with pytest.raises(InputError) as error:
        client_context(TlsFiles(certs.client.certificate, encrypted))
    path, message = problem_of(error)
    assert path == str(encrypted) and "encrypted" in message


def test_required_client_certificates_need_a_ca(certs: Certificates) -> None:
    files = TlsFiles(certs.server.certificate, certs.server.key,
                     require_client_certificate=True)
    with pytest.raises(InputError) as error:
        server_context(files)
    assert "needs a ca" in problem_of(error)[1]


def test_profile_tls_sections_reach_peers_and_listener(
        certs: Certificates, tmp_path: Path) -> None:
    client = {"certificate": str(certs.client.certificate), "key": str(certs.client.key),
              "ca": str(certs.ca.certificate)}
    server = {"certificate": str(certs.server.certificate), "key": str(certs.server.key),
              "ca": str(certs.ca.certificate), "require_client_certificate": True}
    data = profile_data(tmp_path, [("a", Peer("SRC_A", "127.0.0.1", 104)),
                                   ("b", Peer("SRC_B", "127.0.0.1", 105))],
                        Peer("DEST", "127.0.0.1", 106), 11112,
                        listener={"tls": server}, destination={"tls": client})
    data["source"]["devices"][1]["tls"] = client
    profile = load_profile(write_profile(tmp_path, data)).profile
    expected_client = certs.client_tls()
    assert listener_tls(profile) == certs.server_tls(require_client_certificate=True)
    assert destination_peer(profile).tls == expected_client
    assert device_peer(profile, "a").tls is None
    assert device_peer(profile, "b") == Peer("SRC_B", "127.0.0.1", 105, expected_client)
    assert [peer for _, peer in device_peers(profile)][1] == device_peer(profile, "b")
    check_tls(profile)
    with pytest.raises(KeyError):
        device_peer(profile, "missing")


def test_check_tls_lists_every_unusable_file(certs: Certificates, tmp_path: Path) -> None:
    mismatched = {"certificate": str(certs.client.certificate), "key": str(certs.server.key)}
    no_ca = {"certificate": str(certs.server.certificate), "key": str(certs.server.key),
             "require_client_certificate": True}
    data = profile_data(tmp_path, [("a", Peer("SRC_A", "127.0.0.1", 104))],
                        Peer("DEST", "127.0.0.1", 106), 11112,
                        listener={"tls": no_ca}, destination={"tls": mismatched})
    profile = load_profile(write_profile(tmp_path, data)).profile
    with pytest.raises(InputError) as error:
        check_tls(profile)
    assert {p.path for p in error.value.problems} == {str(certs.server.key),
                                                      str(certs.server.certificate)}
