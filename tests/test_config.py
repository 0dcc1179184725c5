"""`serve` settings: defaults < TOML file < BLEEPLINE_* environment < flags, every bad value a one-line
error naming the key and where it came from, and tokens only ever read from the environment."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from bleepline import cli
from bleepline.commands.serve import config_from_args
from bleepline.config import DEFAULT_RTP_PORTS, KEYS, ServeConfig, env_name, load_config
from bleepline.errors import BleeplineError

TOKEN = "t0ken-from-env"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "serve.toml"
    path.write_text(text)
    return path


BASE = 'codec = "pcmu"\nrecipients = ["keys/recipient.pub"]\nstore = "calls"\nrtp_listen = "127.0.0.1:4000"\n'


def test_defaults_and_paths_relative_to_the_file(tmp_path: Path) -> None:
    config = load_config({}, config_file=write(tmp_path, BASE), environ={})
    assert config.codec == "pcmu"
    assert config.recipients == (tmp_path / "keys" / "recipient.pub",)
    assert config.store == tmp_path / "calls"
    assert config.rtp_listen == ("127.0.0.1", 4000)
    assert config.control is None
    assert config.rtp_ports == DEFAULT_RTP_PORTS
    assert (config.max_calls, config.idle_timeout, config.delay, config.mask) == (64, 10.0, None, None)
    assert (config.log_format, config.log_level) == ("text", "info")


def test_file_then_environment_then_flags(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + "max_calls = 5\nidle_timeout = 3\ndelay = 2.5\nlog_format = 'json'\n")
    environ = {"BLEEPLINE_MAX_CALLS": "7", "BLEEPLINE_IDLE_TIMEOUT": "4.5", "BLEEPLINE_MASK": "silence"}
    config = load_config({"max_calls": "9", "delay": None}, config_file=path, environ=environ)
    assert config.max_calls == 9  # flag over environment over file
    assert config.idle_timeout == 4.5  # environment over file
    assert config.delay == 2.5  # file only; a flag not given (None) changes nothing
    assert config.mask == "silence"
    assert config.log_format == "json"


def test_lists_are_replaced_not_merged(tmp_path: Path) -> None:
    path = write(tmp_path, BASE)
    environ = {"BLEEPLINE_RECIPIENTS": os.pathsep.join(["/a.pub", "/b.pub"])}
    assert load_config({}, config_file=path, environ=environ).recipients == (Path("/a.pub"), Path("/b.pub"))
    flags = {"recipients": [Path("c.pub")]}
    assert load_config(flags, config_file=path, environ=environ).recipients == (Path("c.pub"),)


def test_the_config_file_can_come_from_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, BASE)
    assert load_config({}, environ={"BLEEPLINE_CONFIG": str(path)}).codec == "pcmu"


def test_tokens_come_from_the_variables_named_and_never_show(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + 'control = "127.0.0.1:8080"\ntoken_env = "MY_TOKEN"\n')
    environ = {"MY_TOKEN": TOKEN, "SCRAPE": "m3trics", "BLEEPLINE_METRICS_TOKEN_ENV": "SCRAPE"}
    config = load_config({}, config_file=path, environ=environ)
    assert config.control_token == TOKEN
    assert config.metrics_token == "m3trics"
    assert config.rtp_bind_host == "127.0.0.1"
    assert TOKEN not in repr(config)
    assert "m3trics" not in repr(config)


def test_other_bleepline_variables_are_left_alone(tmp_path: Path) -> None:
    # The passphrase and debug switch belong to other commands; the README's token variable too.
    environ = {"BLEEPLINE_PASSPHRASE": "x", "BLEEPLINE_DEBUG": "1", "BLEEPLINE_TOKEN": "y", "BLEEPLINE_X": ""}
    assert load_config({}, config_file=write(tmp_path, BASE), environ=environ).codec == "pcmu"


def test_every_key_has_an_environment_variable_and_a_flag() -> None:
    flags = {action.dest for action in _serve_parser()._actions}
    for key in KEYS:
        assert env_name(key) == "BLEEPLINE_" + key.upper()
        assert key in flags, key
    assert set(KEYS) <= {f for f in ServeConfig.__dataclass_fields__}


def _serve_parser() -> argparse.ArgumentParser:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    serve: argparse.ArgumentParser = sub.choices["serve"]
    return serve


def test_flags_reach_the_config(tmp_path: Path, key_pair: tuple[Path, Path]) -> None:
    path = write(tmp_path, BASE)
    argv = ["serve", "--config", str(path), "--max-calls", "3", "--codec", "pcma", "--log-format", "json"]
    argv += ["--recipient", str(key_pair[0]), "--advertise", "192.0.2.1", "--rtp-ports", "30000-30009"]
    config = config_from_args(cli.build_parser().parse_args(argv))
    assert (config.max_calls, config.codec, config.log_format) == (3, "pcma", "json")
    assert config.recipients == (key_pair[0],)
    assert config.advertise == "192.0.2.1"
    assert config.rtp_ports == range(30000, 30010)


# -- errors: one line, naming the key and the source -----------------------------------------------------

FILE_ERRORS = [
    ("max_calls = 0\n", "serve.toml: max_calls must be a whole number"),
    ("max_calls = true\n", "serve.toml: max_calls must be a whole number"),
    ("max_calls = '5'\n", "serve.toml: max_calls must be a whole number"),
    ("max_calls = 2.5\n", "serve.toml: max_calls must be a whole number"),
    ("idle_timeout = -1\n", "serve.toml: idle_timeout must be a number of seconds above 0"),
    ("idle_timeout = nan\n", "serve.toml: idle_timeout must be a number of seconds above 0"),
    ("delay = 40\n", "serve.toml: delay must be between 0.5 and 30 seconds"),
    ("delay = '2'\n", "serve.toml: delay must be between"),
    ("mask = 'bleep'\n", "serve.toml: mask must be one of beep, silence"),
    ("log_format = 'xml'\n", "serve.toml: log_format must be one of text, json"),
    ("log_level = 'loud'\n", "serve.toml: log_level must be one of"),
    ("rtp_ports = '10-1'\n", "serve.toml: rtp_ports must be LO-HI"),
    ("rtp_ports = [1, 2]\n", "serve.toml: rtp_ports must be LO-HI"),
    ("control = 'nowhere'\n", "serve.toml: control must be HOST:PORT"),
    ("control = 'a b:1'\n", "serve.toml: control must be HOST:PORT"),
    ("token_env = 'NOT A NAME'\n", "serve.toml: token_env must name an environment variable"),
    ("advertise = 'example.com'\n", "serve.toml: advertise must be a literal unicast"),
    ("advertise = '224.0.0.1'\n", "serve.toml: advertise must be a literal unicast"),
    ("advertise = '0.0.0.0'\n", "serve.toml: advertise must be a literal unicast"),
    ("rtp_host = 'x\\ny'\n", "serve.toml: rtp_host must be a host name or address"),
    ("recipients = 'one.pub'\n", "serve.toml: recipients must be a list of paths"),
    ("recipients = []\n", "serve.toml: recipients must be a list of paths"),
    ("recipients = [1]\n", "serve.toml: recipients must be a list of paths"),
    ("store = 5\n", "serve.toml: store must be a path"),
    ("model = ''\n", "serve.toml: model must be"),
    ("[serve]\ncodec = 'pcmu'\n", "serve.toml: unknown key 'serve'"),
    ("colour = 'blue'\n", "serve.toml: unknown key 'colour' (known: rtp_listen"),
    ("token = 'hunter2'\n", "serve.toml: token: a token is never read from a file"),
    ("metrics_token = 'hunter2'\n", "metrics_token_env"),
    ("codec = \n", "serve.toml: not valid TOML"),
]


@pytest.mark.parametrize(("text", "says"), FILE_ERRORS)
def test_file_errors_are_one_line(text: str, says: str, tmp_path: Path) -> None:
    # The line under test last: TOML refuses a key given twice, so BASE's keys are filtered out of it.
    key = text.split("=")[0].strip()
    base = "".join(line + "\n" for line in BASE.splitlines() if not line.startswith(key + " "))
    path = write(tmp_path, base + text)
    with pytest.raises(BleeplineError) as caught:
        load_config({}, config_file=path, environ={})
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(str(tmp_path)), message
    assert says in message, message
    assert "hunter2" not in message


def test_a_missing_config_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(BleeplineError, match="cannot read the config file") as caught:
        load_config({}, config_file=tmp_path / "nope.toml", environ={})
    assert "\n" not in str(caught.value)


ENV_ERRORS = [
    ("BLEEPLINE_MAX_CALLS", "many", "$BLEEPLINE_MAX_CALLS must be a whole number"),
    ("BLEEPLINE_MAX_CALLS", "2.0", "$BLEEPLINE_MAX_CALLS must be a whole number"),
    ("BLEEPLINE_IDLE_TIMEOUT", "0", "$BLEEPLINE_IDLE_TIMEOUT must be a number of seconds above 0"),
    ("BLEEPLINE_IDLE_TIMEOUT", "inf", "$BLEEPLINE_IDLE_TIMEOUT must be a number of seconds above 0"),
    ("BLEEPLINE_CODEC", "opus", "$BLEEPLINE_CODEC must be one of pcmu, pcma"),
    ("BLEEPLINE_RTP_LISTEN", "host:99999", "$BLEEPLINE_RTP_LISTEN must be HOST:PORT"),
    ("BLEEPLINE_DELAY", "0.1", "$BLEEPLINE_DELAY must be between 0.5 and 30 seconds"),
    ("BLEEPLINE_LOG_FORMAT", "JSON", "$BLEEPLINE_LOG_FORMAT must be one of text, json"),
]


@pytest.mark.parametrize(("name", "value", "says"), ENV_ERRORS)
def test_environment_errors_are_one_line(name: str, value: str, says: str, tmp_path: Path) -> None:
    with pytest.raises(BleeplineError) as caught:
        load_config({}, config_file=write(tmp_path, BASE), environ={name: value})
    assert "\n" not in str(caught.value)
    assert str(caught.value).startswith(says), caught.value


FLAG_ERRORS = [
    (["--max-calls", "0"], "--max-calls must be a whole number"),
    (["--idle-timeout", "soon"], "--idle-timeout must be a number of seconds above 0"),
    (["--delay", "99"], "--delay must be between 0.5 and 30 seconds"),
    (["--codec", "g729"], "--codec must be one of pcmu, pcma"),
    (["--mask", "hum"], "--mask must be one of beep, silence"),
    (["--log-level", "trace"], "--log-level must be one of"),
    (["--rtp-listen", "nowhere"], "--rtp-listen must be HOST:PORT"),
    (["--rtp-ports", "0-5"], "--rtp-ports must be LO-HI"),
    (["--advertise", "fe80::1%eth0"], "--advertise must be a literal unicast"),
    (["--token-env", "$X"], "--token-env must name an environment variable"),
    (["--control", "127.0.0.1:0"], "the control API needs a token: give --token-env VAR"),
    (["--control", "127.0.0.1:0", "--token-env", "UNSET_VAR_FOR_TEST"], "$UNSET_VAR_FOR_TEST is empty"),
    (["--control", "0.0.0.0:0", "--token-env", "SET_VAR_FOR_TEST"], "give --advertise"),
    (
        [
            "--control",
            "127.0.0.1:0",
            "--token-env",
            "SET_VAR_FOR_TEST",
            "--metrics-token-env",
            "UNSET_VAR_FOR_TEST",
        ],
        "/metrics needs a token: $UNSET_VAR_FOR_TEST is empty",
    ),
    (["--rtp-listen", "127.0.0.1:0", "--metrics-token-env", "SET_VAR_FOR_TEST"], "give --control as well"),
    (["--config", "/nonexistent/serve.toml"], "/nonexistent/serve.toml: cannot read the config file"),
]


@pytest.mark.parametrize(("extra", "says"), FLAG_ERRORS)
def test_command_line_errors_are_one_line(
    extra: list[str],
    says: str,
    tmp_path: Path,
    key_pair: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in [n for n in os.environ if n.startswith("BLEEPLINE_")]:
        monkeypatch.delenv(name)
    monkeypatch.delenv("UNSET_VAR_FOR_TEST", raising=False)
    monkeypatch.setenv("SET_VAR_FOR_TEST", TOKEN)
    argv = ["serve", "--codec", "pcmu", "--recipient", str(key_pair[0]), "--store", str(tmp_path / "s")]
    if "--rtp-listen" not in extra and "--control" not in extra:
        argv += ["--rtp-listen", "127.0.0.1:0"]
    assert cli.main(argv + extra) == cli.EXIT_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert says in err, err
    assert TOKEN not in err
    assert not (tmp_path / "s").exists()  # nothing made before the settings are whole


@pytest.mark.parametrize("missing", ["--codec", "--recipient", "--store"])
def test_required_settings_are_named_with_every_way_to_give_them(
    missing: str, tmp_path: Path, key_pair: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    given = {"--codec": "pcmu", "--recipient": str(key_pair[0]), "--store": str(tmp_path / "s")}
    argv = ["serve", "--rtp-listen", "127.0.0.1:0"]
    for flag, value in given.items():
        if flag != missing:
            argv += [flag, value]
    assert cli.main(argv) == cli.EXIT_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert missing in err, err


# -- the speech model's device, precision and batching (a GPU host) --------------------------------------


def test_device_compute_type_and_batching_default_to_the_cpu_path(tmp_path: Path) -> None:
    config = load_config({}, config_file=write(tmp_path, BASE), environ={})
    assert (config.device, config.compute_type, config.asr_batch) == ("cpu", None, None)


def test_a_gpu_host_sets_device_model_and_batching_from_each_source(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + "device = 'cuda'\ncompute_type = 'int8_float16'\nasr_batch = false\n")
    environ = {"BLEEPLINE_MODEL": "/models/whisper-small-en", "BLEEPLINE_ASR_BATCH": "true"}
    config = load_config({"compute_type": "float16"}, config_file=path, environ=environ)
    assert config.device == "cuda"
    assert config.model == "/models/whisper-small-en"
    assert config.asr_batch is True  # environment over file
    assert config.compute_type == "float16"  # flag over file


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("device = 'gpu'\n", "serve.toml: device must be one of cpu, cuda, auto"),
        ("compute_type = 'fp16'\n", "serve.toml: compute_type must be one of int8"),
        ("asr_batch = 'yes'\n", "serve.toml: asr_batch must be true or false"),
    ],
)
def test_speech_settings_errors_are_one_line(text: str, says: str, tmp_path: Path) -> None:
    with pytest.raises(BleeplineError) as caught:
        load_config({}, config_file=write(tmp_path, BASE + text), environ={})
    assert says in str(caught.value), caught.value
    assert "\n" not in str(caught.value)


def test_speech_flags_reach_the_config(tmp_path: Path, key_pair: tuple[Path, Path]) -> None:
    argv = ["serve", "--config", str(write(tmp_path, BASE)), "--recipient", str(key_pair[0])]
    argv += ["--device", "cuda", "--compute-type", "float16", "--asr-batch", "false"]
    config = config_from_args(cli.build_parser().parse_args(argv))
    assert (config.device, config.compute_type, config.asr_batch) == ("cuda", "float16", False)
