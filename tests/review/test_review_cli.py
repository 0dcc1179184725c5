"""The admin commands end to end through `bleepline.cli.main`: users, audit, retention, crm."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from bleepline.cli import main
from bleepline.review.audit import LOG_NAME, AuditLog
from bleepline.review.config import ReviewConfig
from bleepline.review.users import Role, UserStore
from tests.review.conftest import CALL_IDS


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def cfg(review_config_file: Path) -> str:
    return str(review_config_file)


def test_users_lifecycle_is_audited(
    review_store: ReviewConfig, cfg: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BLEEPLINE_PASSWORD", "a fresh password")
    code, out, _ = _cli(
        capsys, "users", "add", "vera", "--role", "reviewer", "--tags", "outsourced,sales", "--config", cfg
    )
    assert code == 0
    assert "added vera as reviewer, limited to calls tagged outsourced, sales" in out
    store = UserStore(review_store.state / "users.db")
    vera = store.authenticate("vera", "a fresh password")
    assert vera is not None
    assert vera.tags == frozenset({"outsourced", "sales"})
    code, out, _ = _cli(capsys, "users", "set-role", "vera", "supervisor", "--config", cfg)
    assert code == 0
    vera = store.get("vera")
    assert vera is not None
    assert vera.role is Role.SUPERVISOR
    code, out, _ = _cli(capsys, "users", "set-tags", "vera", "", "--config", cfg)
    assert "vera now sees all calls" in out
    code, out, _ = _cli(capsys, "users", "list", "--config", cfg)
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 6
    assert any(line.split()[:2] == ["otto", "reviewer"] and "outsourced" in line for line in lines)
    code, out, _ = _cli(capsys, "users", "remove", "vera", "--config", cfg)
    assert code == 0
    assert store.get("vera") is None
    changes = [r for r in AuditLog(review_store.state).records() if r.event == "user_change"]
    assert [r.detail["action"] for r in changes] == ["add", "set_role", "set_tags", "remove"]
    assert all(r.detail["target"] == "vera" and r.source == "cli" for r in changes)
    trail = (review_store.state / LOG_NAME).read_text()
    assert "a fresh password" not in trail


def test_users_errors_are_one_line(
    cfg: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BLEEPLINE_PASSWORD", raising=False)
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    code, _, err = _cli(capsys, "users", "add", "vera", "--role", "reviewer", "--config", cfg)
    assert code == 1
    assert err.count("\n") == 1
    assert "BLEEPLINE_PASSWORD" in err
    monkeypatch.setenv("BLEEPLINE_PASSWORD", "a fresh password")
    code, _, err = _cli(capsys, "users", "add", "alice", "--role", "reviewer", "--config", cfg)
    assert code == 1
    assert "already exists" in err
    code, _, err = _cli(capsys, "users", "remove", "nobody", "--config", cfg)
    assert code == 1
    assert "no user" in err


def test_audit_verify_and_show(
    review_store: ReviewConfig, cfg: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    log = AuditLog(review_store.state)
    log.append("login_ok", user="alice", role="reviewer", source="10.0.0.7")
    log.append("play", user="alice", role="reviewer", call_id="c-0001", source="10.0.0.7")
    code, out, _ = _cli(capsys, "audit", "verify", "--config", cfg)
    assert (code, out) == (0, "audit trail OK: 2 records\n")
    code, out, _ = _cli(capsys, "audit", "show", "--last", "1", "--config", cfg)
    assert code == 0
    assert out.count("\n") == 1
    assert "play" in out
    assert "call=c-0001" in out
    code, out, _ = _cli(capsys, "audit", "verify", "--config", cfg)
    assert out == "audit trail OK: 3 records\n"  # the show itself was recorded
    code, out, _ = _cli(capsys, "audit", "show", "--last", "1", "--json", "--config", cfg)
    shown = json.loads(out)
    assert shown["seq"] == 3
    assert shown["event"] == "audit_view"
    assert shown["mac"] == AuditLog(review_store.state).records()[2].mac  # an anchor to keep elsewhere
    path = review_store.state / LOG_NAME
    data = bytearray(path.read_bytes())
    data[data.index(b"c-0001")] = ord("d")
    path.write_bytes(bytes(data))
    code, out, _ = _cli(capsys, "audit", "verify", "--config", cfg)
    assert code == 1
    assert out.startswith("audit trail BROKEN: line 2")
    assert out.count("\n") == 1


def _append_config(path: str, text: str) -> None:
    with open(path, "a") as handle:
        handle.write(text)


def test_retention_run(review_store: ReviewConfig, cfg: str, capsys: pytest.CaptureFixture[str]) -> None:
    _append_config(cfg, "\n[retention]\ndays = 200\nby_tag = { outsourced = 150 }\n")
    code, out, _ = _cli(capsys, "retention", "run", "--dry-run", "--as-of", "2026-12-01", "--config", cfg)
    assert code == 0
    lines = out.splitlines()
    assert [line.split()[2].rstrip(":") for line in lines if line.startswith("would shred c-")] == [
        "c-0001",
        "c-0002",
        "c-0003",
    ]
    assert lines[-1] == "would shred 3 recordings, kept 2, failed 0, skipped 1"
    assert {p.stem for p in review_store.store.glob("*.bleep")} >= set(CALL_IDS)
    code, _, err = _cli(capsys, "retention", "run", "--as-of", "2026-12-01", "--config", cfg)
    assert code == 1
    assert "--dry-run" in err


def test_retention_run_for_real(
    review_store: ReviewConfig, cfg: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # By tag only, a day: c-0002 and c-0003 (outsourced, from March and June 2026) are long expired today.
    _append_config(cfg, "\n[retention.by_tag]\noutsourced = 1\n")
    code, out, _ = _cli(capsys, "retention", "run", "--config", cfg)
    assert code == 0
    assert "shredded c-0002: created 2026-03-10" in out
    assert "tag outsourced period 1 days" in out
    assert out.splitlines()[-1].startswith("shredded 2 recordings, kept 3")
    left = {p.name for p in review_store.store.iterdir()}
    assert not {n for n in left if n.startswith(("c-0002", "c-0003"))}
    code, out, _ = _cli(capsys, "audit", "verify", "--config", cfg)
    assert (code, out) == (0, "audit trail OK: 2 records\n")


class _Hook(BaseHTTPRequestHandler):
    status = 200
    bodies: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        self.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(self.status)
        self.end_headers()
        self.wfile.write(b"error page that must not be kept")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def hook_url() -> Iterator[str]:
    _Hook.bodies = []
    _Hook.status = 200
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def test_crm_send_and_status(
    review_store: ReviewConfig, cfg: str, hook_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    secret = tmp_path / "crm.secret"
    secret.write_text("0123456789abcdef0123456789abcdef\n")
    _append_config(
        cfg,
        f'\n[webhook]\nurl = "{hook_url}"\nsecret_file = "{secret}"\nfields = ["call_id", "duration_s"]\n'
        "max_attempts = 1\n",
    )
    _Hook.status = 500
    code, out, _ = _cli(capsys, "crm", "send", "--call", "c-0001", "--config", cfg)
    assert code == 1
    assert "failed  c-0001: 1 attempt(s) (HTTP 500)" in out
    code, out, _ = _cli(capsys, "crm", "status", "--config", cfg)
    assert code == 0
    assert "failed  c-0001: 1 attempt(s)" in out
    assert "last error: HTTP 500" in out
    assert "error page" not in out
    assert out.splitlines()[-1] == "sent 0, pending 0, failed 1, not yet attempted 3"
    _Hook.status = 200
    code, out, _ = _cli(capsys, "crm", "send", "--config", cfg)
    assert code == 0
    assert out.splitlines()[-1] == "sent 4, failed 0"
    code, out, _ = _cli(capsys, "crm", "status", "--config", cfg)
    assert out.splitlines()[-1] == "sent 4, pending 0, failed 0, not yet attempted 0"
    assert len(_Hook.bodies) == 5


def test_config_problems_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _cli(capsys, "audit", "verify", "--config", str(tmp_path / "missing.toml"))
    assert code == 1
    assert err.startswith("bleepline: error: ")
    assert err.count("\n") == 1
    bad = tmp_path / "bad.toml"
    bad.write_text('store = "s"\nstate = "t"\n')
    code, _, err = _cli(capsys, "crm", "status", "--config", str(bad))
    assert code == 1
    assert "no [webhook] section" in err
