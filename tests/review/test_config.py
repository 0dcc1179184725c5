"""The review config file: defaults, relative paths, and a one-line error for every bad key."""

from __future__ import annotations

from pathlib import Path

import pytest

from bleepline.review.config import ReviewConfigError, WebhookSettings, load_review_config


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "review.toml"
    path.write_text(text)
    return path


def test_minimal_config_has_defaults(tmp_path: Path) -> None:
    config = load_review_config(_write(tmp_path, 'store = "rec"\nstate = "/var/lib/x"\n'))
    assert config.store == tmp_path / "rec"  # relative to the config file
    assert config.state == Path("/var/lib/x")
    assert config.identity is None
    assert config.retention_days is None
    assert dict(config.retention_by_tag) == {}
    assert config.session_timeout_s == 1800
    assert config.login_attempts == 5
    assert config.login_window_s == 300
    assert config.webhook is None


def test_full_config(tmp_path: Path) -> None:
    config = load_review_config(
        _write(
            tmp_path,
            """
store = "rec"
state = "state"
identity = "keys/identity.key"
session_timeout_s = 600
login_attempts = 3
login_window_s = 60
port = 9000

[retention]
days = 90
by_tag = { outsourced = 30, legal = 365 }

[webhook]
url = "https://crm.example/hook"
secret_file = "crm.secret"
fields = ["call_id", "duration_s", "review_url"]
include_transcript = true
max_attempts = 3
base_url = "https://review.example"
""",
        )
    )
    assert config.identity == tmp_path / "keys/identity.key"
    assert config.session_timeout_s == 600
    assert config.port == 9000
    assert config.retention_days == 90
    assert dict(config.retention_by_tag) == {"outsourced": 30, "legal": 365}
    assert config.webhook == WebhookSettings(
        url="https://crm.example/hook",
        secret_file=tmp_path / "crm.secret",
        fields=("call_id", "duration_s", "review_url"),
        include_transcript=True,
        max_attempts=3,
        base_url="https://review.example",
    )
    with pytest.raises(TypeError):
        config.retention_by_tag["x"] = 1  # type: ignore[index]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('state = "s"\n', "missing key store"),
        ('store = "r"\n', "missing key state"),
        ('store = "r"\nstate = "s"\nretension_days = 3\n', "unknown key retension_days"),
        ('store = "r"\nstate = "s"\n[retention]\ndays = 0\n', "retention.days must be a positive"),
        ('store = "r"\nstate = "s"\n[retention]\ndays = "90"\n', "retention.days"),
        ('store = "r"\nstate = "s"\n[retention]\nweeks = 3\n', "unknown key retention.weeks"),
        ('store = "r"\nstate = "s"\n[retention.by_tag]\n"a b" = 3\n', "not a tag name"),
        ('store = "r"\nstate = "s"\nsession_timeout_s = -1\n', "session_timeout_s"),
        ('store = 3\nstate = "s"\n', "store must be a path"),
        ('store = "r"\nstate = "s"\nretention = 5\n', "retention must be a table"),
        ("store = [", "not valid TOML"),
        (
            'store = "r"\nstate = "s"\n[webhook]\nurl = "ftp://x"\nsecret_file = "k"\nfields = ["call_id"]\n',
            "webhook.url",
        ),
        (
            'store = "r"\nstate = "s"\n[webhook]\nurl = "https://x"\nsecret_file = "k"\n'
            'fields = ["call_id", "caller_number"]\n',
            "'caller_number' is not allowed",
        ),
        (
            'store = "r"\nstate = "s"\n[webhook]\nurl = "https://x"\nsecret_file = "k"\n'
            'fields = ["transcript"]\n',
            "include_transcript",
        ),
        (
            'store = "r"\nstate = "s"\n[webhook]\nurl = "https://x"\nsecret_file = "k"\n'
            'fields = ["review_url"]\n',
            "needs webhook.base_url",
        ),
        ('store = "r"\nstate = "s"\n[webhook]\nurl = "https://x"\nfields = ["call_id"]\n', "secret_file"),
        (
            'store = "r"\nstate = "s"\n[webhook]\nurl = "https://x"\nsecret_file = "k"\nfields = []\n',
            "non-empty list",
        ),
        (
            'store = "r"\nstate = "s"\n[webhook]\nurl = "https://x"\nsecret_file = "k"\n'
            'fields = ["call_id"]\ninclude_transcript = "yes"\n',
            "true or false",
        ),
    ],
)
def test_bad_config_is_one_line_error(tmp_path: Path, text: str, match: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ReviewConfigError, match=match) as caught:
        load_review_config(path)
    message = str(caught.value)
    assert "\n" not in message
    assert str(path) in message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ReviewConfigError, match="does not exist"):
        load_review_config(tmp_path / "nope.toml")
    with pytest.raises(ReviewConfigError, match="is a directory"):
        load_review_config(tmp_path)
