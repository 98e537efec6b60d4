"""Registry credentials come from docker's config.json as the docker CLI reads it; secrets never
reach a message or a repr.

Credential helpers are real processes here: a `docker-credential-fake` shell script on PATH that
logs what it was asked and answers JSON, as docker's helpers do.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import traceback
from pathlib import Path
from typing import Any

import pytest

from dssesign.errors import ConfigError
from dssesign.oci.credentials import Credentials, config_path, credentials_for

HOST = "registry.example.com"
HUB_KEY = "https://index.docker.io/v1/"
SECRET = "s3cr3t-Pa55-do-not-print"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.fixture
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Point DOCKER_CONFIG at an empty directory; the returned function writes config.json."""
    directory = tmp_path / "docker"
    directory.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(directory))

    def write(config: object) -> Path:
        path = directory / "config.json"
        path.write_text(json.dumps(config))
        return path

    return write


@pytest.fixture
def helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Install `docker-credential-<name>` (a /bin/sh script) in a directory put first on PATH.

    The script logs "<argv1> <stdin>" to the returned log file, then runs `body` with the
    server URL it was given in $server.
    """
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "helper.log"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}")

    def install(body: str, name: str = "fake") -> Path:
        script = bin_dir / f"docker-credential-{name}"
        script.write_text(
            f'#!/bin/sh\nserver=$(cat)\nprintf "%s %s\\n" "$1" "$server" >> "{log}"\n{body}\n'
        )
        script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        return log

    return install


def _answer(username: str, secret: str) -> str:
    document = json.dumps({"ServerURL": "x", "Username": username, "Secret": secret})
    return f"cat <<'EOF'\n{document}\nEOF"


# --- config.json auths ----------------------------------------------------------------------------


def test_config_path_follows_docker_config(docker_config: Any) -> None:
    assert config_path() == Path(os.environ["DOCKER_CONFIG"]) / "config.json"


def test_no_config_file_is_anonymous(docker_config: Any) -> None:
    credentials = credentials_for(HOST)
    assert credentials.anonymous and credentials == Credentials()


def test_auth_base64_user_password(docker_config: Any) -> None:
    path = docker_config({"auths": {HOST: {"auth": _b64("alice:pa:ss")}}})
    credentials = credentials_for(HOST)
    # Split at the first colon only: a password may contain colons.
    assert (credentials.username, credentials.password) == ("alice", "pa:ss")
    assert not credentials.anonymous
    assert credentials.source == f"{path} auths"


def test_username_and_password_fields(docker_config: Any) -> None:
    docker_config({"auths": {HOST: {"username": "bob", "password": "hunter2"}}})
    credentials = credentials_for(HOST)
    assert (credentials.username, credentials.password) == ("bob", "hunter2")


def test_identity_token_and_registry_token(docker_config: Any) -> None:
    docker_config(
        {
            "auths": {
                HOST: {"auth": _b64("u:"), "identitytoken": "refresh-token-1"},
                "tokens.example.com": {"registrytoken": "bearer-token-2"},
            }
        }
    )
    refresh = credentials_for(HOST)
    assert refresh.identity_token == "refresh-token-1" and not refresh.anonymous
    bearer = credentials_for("tokens.example.com")
    assert bearer.registry_token == "bearer-token-2" and not bearer.anonymous
    assert (bearer.username, bearer.password, bearer.identity_token) == ("", "", "")


@pytest.mark.parametrize("key", [f"https://{HOST}/v1/", f"https://{HOST}", f"http://{HOST}/v2/"])
def test_url_shaped_auths_keys_name_their_host(docker_config: Any, key: str) -> None:
    docker_config({"auths": {key: {"auth": _b64("carol:pw")}}})
    assert credentials_for(HOST).username == "carol"


def test_entries_for_other_hosts_and_ports_are_not_used(docker_config: Any) -> None:
    docker_config(
        {
            "auths": {
                "other.example.com": {"auth": _b64("mallory:pw")},
                "127.0.0.1:5001": {"auth": _b64("mallory:pw")},
                f"{HOST}.evil.example": {"auth": _b64("mallory:pw")},
                "127.0.0.1:5000": {"auth": _b64("dave:pw")},
            }
        }
    )
    assert credentials_for(HOST).anonymous
    assert credentials_for("127.0.0.1:5000").username == "dave"
    assert credentials_for("127.0.0.1:5002").anonymous


@pytest.mark.parametrize("key", [HUB_KEY, "docker.io", "index.docker.io", "registry-1.docker.io"])
def test_docker_hub_key(docker_config: Any, key: str) -> None:
    docker_config({"auths": {key: {"auth": _b64("hubuser:hubpass")}}})
    credentials = credentials_for("docker.io")
    assert (credentials.username, credentials.password) == ("hubuser", "hubpass")


@pytest.mark.parametrize(
    ("auth", "problem"),
    [(f"!!{SECRET}!!", "not base64"), (_b64(f"no-colon-{SECRET}"), "not user:password")],
)
def test_a_bad_auth_value_is_refused_without_echoing_it(
    docker_config: Any, auth: str, problem: str
) -> None:
    docker_config({"auths": {HOST: {"auth": auth}}})
    with pytest.raises(ConfigError) as caught:
        credentials_for(HOST)
    message = str(caught.value)
    assert problem in message
    assert SECRET not in message and auth not in message


@pytest.mark.parametrize("content", ["{not json", "[]", '"auths"'])
def test_a_malformed_config_is_refused(docker_config: Any, content: str) -> None:
    path = docker_config({})
    path.write_text(content)
    with pytest.raises(ConfigError, match=r"docker config .*config\.json"):
        credentials_for(HOST)


# --- credential helpers ---------------------------------------------------------------------------


def test_cred_helper_for_the_host(docker_config: Any, helper: Any) -> None:
    log = helper(_answer("helper-user", SECRET))
    docker_config(
        {"credHelpers": {HOST: "fake"}, "auths": {HOST: {"auth": _b64("file-user:file-pw")}}}
    )
    credentials = credentials_for(HOST)
    # The helper wins over auths; it was asked `get` with the host on stdin.
    assert (credentials.username, credentials.password) == ("helper-user", SECRET)
    assert credentials.source == "credential helper fake"
    assert log.read_text() == f"get {HOST}\n"


def test_cred_helpers_entry_for_another_host_is_not_run(docker_config: Any, helper: Any) -> None:
    log = helper(_answer("helper-user", SECRET))
    docker_config({"credHelpers": {"other.example.com": "fake"}})
    assert credentials_for(HOST).anonymous
    assert not log.exists()


def test_creds_store_is_the_default_helper(docker_config: Any, helper: Any) -> None:
    log = helper(_answer("store-user", SECRET))
    docker_config({"credsStore": "fake"})
    credentials = credentials_for(HOST)
    assert (credentials.username, credentials.password) == ("store-user", SECRET)
    assert log.read_text() == f"get {HOST}\n"


def test_docker_hub_helper_is_asked_for_the_hub_key(docker_config: Any, helper: Any) -> None:
    log = helper(_answer("hubuser", SECRET))
    docker_config({"credsStore": "fake"})
    assert credentials_for("docker.io").username == "hubuser"
    assert log.read_text() == f"get {HUB_KEY}\n"


def test_token_username_means_an_identity_token(docker_config: Any, helper: Any) -> None:
    helper(_answer("<token>", "refresh-" + SECRET))
    docker_config({"credHelpers": {HOST: "fake"}})
    credentials = credentials_for(HOST)
    assert credentials.identity_token == "refresh-" + SECRET
    assert (credentials.username, credentials.password) == ("", "")
    assert not credentials.anonymous


def test_credentials_not_found_falls_back_to_auths(docker_config: Any, helper: Any) -> None:
    log = helper('echo "credentials not found in native keychain"\nexit 1')
    docker_config({"credsStore": "fake", "auths": {HOST: {"auth": _b64("file-user:file-pw")}}})
    credentials = credentials_for(HOST)
    assert (credentials.username, credentials.password) == ("file-user", "file-pw")
    assert log.read_text() == f"get {HOST}\n"  # the helper was asked first


def test_credentials_not_found_and_no_auths_is_anonymous(docker_config: Any, helper: Any) -> None:
    helper('echo "Credentials Not Found" >&2\nexit 1')
    docker_config({"credsStore": "fake"})
    assert credentials_for(HOST).anonymous


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (f'echo "token {SECRET} rejected"\necho "{SECRET}" >&2\nexit 3', "failed (exit 3)"),
        (f'echo "{{\\"Username\\": \\"u\\", \\"Secret\\": \\"{SECRET}\\""', "did not answer JSON"),
        (f'echo \'{{"Username": "u", "Password": "{SECRET}"}}\'', "without Username"),
        (f"echo '[\"{SECRET}\"]'", "did not answer JSON"),
    ],
)
def test_a_failing_helper_never_leaks_what_it_printed(
    docker_config: Any, helper: Any, body: str, problem: str
) -> None:
    helper(body)
    docker_config({"credHelpers": {HOST: "fake"}, "auths": {HOST: {"auth": _b64("f:f")}}})
    with pytest.raises(ConfigError) as caught:
        credentials_for(HOST)
    message = str(caught.value)
    assert "docker-credential-fake" in message and problem in message, message
    assert SECRET not in message and SECRET not in repr(caught.value)
    # Nor in what DSSESIGN_DEBUG=1 prints (the traceback, with any chained exception).
    assert SECRET not in "".join(traceback.format_exception(caught.value))


def test_a_helper_missing_from_path_is_named(docker_config: Any, helper: Any) -> None:
    docker_config({"credHelpers": {HOST: "absent"}})
    with pytest.raises(ConfigError, match="docker-credential-absent is not on PATH"):
        credentials_for(HOST)


@pytest.mark.parametrize("name", ["../evil", "sub/evil", "/tmp/evil", "", "-rf", "a b", "x" * 65])
def test_a_helper_name_with_a_path_is_refused_before_anything_runs(
    docker_config: Any,
    helper: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
) -> None:
    # A program that a path-shaped name would reach (relative to the working directory):
    # `docker-credential-../evil` is `./docker-credential-../evil`.
    marker = tmp_path / "ran"
    planted = tmp_path / "docker-credential-.." / "evil"
    planted.parent.mkdir()
    answer = json.dumps({"Username": "u", "Secret": "s"})
    planted.write_text(f"#!/bin/sh\ntouch {marker}\necho '{answer}'\n")
    planted.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    docker_config({"credHelpers": {HOST: name}, "credsStore": name})
    if not name:  # an empty name means no helper, as docker reads it
        assert credentials_for(HOST).anonymous
    else:
        with pytest.raises(ConfigError, match="bad credential helper"):
            credentials_for(HOST)
    assert not marker.exists()


# --- repr ---------------------------------------------------------------------------------------


def test_repr_never_shows_secrets() -> None:
    credentials = Credentials(
        username="visible-user",
        password="pw-" + SECRET,
        identity_token="id-" + SECRET,
        registry_token="reg-" + SECRET,
        source="config.json auths",
    )
    for text in (repr(credentials), str(credentials), f"{credentials}", f"{credentials!r}"):
        assert SECRET not in text, text
        assert "visible-user" in text and "config.json auths" in text  # the repr is not empty


def test_repr_of_helper_credentials_never_shows_secrets(docker_config: Any, helper: Any) -> None:
    helper(_answer("helper-user", SECRET))
    docker_config({"credHelpers": {HOST: "fake"}})
    credentials = credentials_for(HOST)
    assert credentials.password == SECRET
    assert SECRET not in repr(credentials) and "helper-user" in repr(credentials)
