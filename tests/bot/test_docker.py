"""The Dockerfile's promises, checked as text (``.ci/compose`` builds and runs it for real)."""

from __future__ import annotations

import json
from pathlib import Path

from zsl.vectors import DEFAULT_MODEL_FILE

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCUMENTED_COMMAND = ["python", "-m", "bot"]  # what the README tells operators to run


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined = DOCKERFILE.read_text().replace("\\\n", " ")
    result = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, arguments = line.partition(" ")
            result.append((keyword.upper(), arguments.strip()))
    return result


def test_the_project_is_installed_from_the_context_without_a_copy() -> None:
    steps = instructions()
    install = next(arguments for keyword, arguments in steps if "pip install" in arguments)

    assert not any(keyword in ("COPY", "ADD") for keyword, _ in steps)  # one copy: site-packages
    assert "--mount=type=bind,target=/src" in install
    assert "pip install --no-compile /src" in install
    assert (ROOT / "pyproject.toml").is_file()


def test_command_is_the_documented_entry_point() -> None:
    commands = [arguments for keyword, arguments in instructions() if keyword == "CMD"]

    assert len(commands) == 1
    assert json.loads(commands[0]) == DOCUMENTED_COMMAND
    assert not any(keyword == "ENTRYPOINT" for keyword, _ in instructions())


def test_runs_as_a_non_root_user_on_a_slim_base_with_a_data_volume() -> None:
    steps = instructions()
    keywords = [keyword for keyword, _ in steps]

    assert steps[0][0] == "FROM"
    assert steps[0][1].endswith("-slim")
    user = next(arguments for keyword, arguments in steps if keyword == "USER")
    assert user not in ("root", "0")
    assert keywords.index("USER") < keywords.index("CMD")
    assert any(keyword == "VOLUME" and "/data" in arguments for keyword, arguments in steps)


def test_the_default_model_ships_in_the_image_with_the_package() -> None:
    runs = " ".join(arguments for keyword, arguments in instructions() if keyword == "RUN")
    ignored = (ROOT / ".dockerignore").read_text()

    assert "pip install --no-compile /src " in runs  # no extra: no GloVe, no pyarrow, no torch
    assert "[glove]" not in runs
    assert "zslv" not in ignored
    assert "models" not in ignored
    assert DEFAULT_MODEL_FILE.relative_to(ROOT).parts[0] == "zsl"  # COPY zsl brings it


def test_secrets_and_data_stay_out_of_the_image() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }

    assert {".env", "data/", "*.sqlite3*"} <= ignored


def test_package_index_settings_come_in_as_build_secrets_not_layers() -> None:
    steps = instructions()
    install = next(arguments for keyword, arguments in steps if "pip install" in arguments)
    copied = " ".join(arguments for keyword, arguments in steps if keyword in ("COPY", "ADD"))

    assert "--mount=type=secret,id=pip.conf,target=/etc/pip.conf" in install
    assert "--mount=type=secret,id=pip-cert" in install
    assert "pip.conf" not in copied
    assert not any(
        keyword in ("ARG", "ENV") and "PIP_INDEX" in arguments for keyword, arguments in steps
    )
