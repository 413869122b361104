"""Every setting with a bad value stops start-up with one line naming it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot.settings import SettingsError, load_settings, unknown_dotenv_settings

ROOT = Path(__file__).resolve().parents[2]

BAD = [
    ("DATABASE_URL", "mysql://root@localhost/db"),
    ("TRANSITION_MAX_ATTEMPTS", "0"),
    ("TRANSITION_MAX_ATTEMPTS", "many"),
    ("TRANSITION_BACKOFF_INITIAL_SECONDS", "-1"),
    ("TRANSITION_BACKOFF_MAX_SECONDS", "0"),
    ("LOG_LEVEL", "LOUD"),
    ("DB_POOL_SIZE", "0"),
    ("DB_MAX_OVERFLOW", "-3"),
    ("DB_STATEMENT_CACHE_SIZE", "x"),
    ("RETENTION_DAYS", "-1"),
    ("DISCORD_TOKEN", "has spaces in it"),
    ("DISCORD_API_BASE", "ftp://example"),
    ("DISCORD_GATEWAY_URL", "localhost:9"),
    ("API_TOKEN", "short"),
    ("API_PORT", "70000"),
    ("API_HOST", ""),
    ("OUTBOX_POLL_SECONDS", "0"),
    ("OUTBOX_LOCK_SECONDS", "0.5"),
    ("OUTBOX_MAX_ATTEMPTS", "0"),
    ("DISCORD_CLIENT_ID", "lifeline"),
    ("DISCORD_CLIENT_ID", "١٢٣"),
    ("DISCORD_CLIENT_SECRET", "has a space"),
    ("CONSOLE_SESSION_SECRET", "x" * 31),
    ("CONSOLE_URL", "lifeline.example.org"),
    ("DISCORD_OAUTH_URL", "javascript:alert(1)"),
]


@pytest.mark.parametrize(("name", "value"), BAD, ids=[f"{n}={v}" for n, v in BAD])
def test_bad_setting_is_one_line_naming_it(monkeypatch: pytest.MonkeyPatch, name: str,
                                          value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert name in message and "\n" not in message


def test_backoff_bounds_must_be_ordered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRANSITION_BACKOFF_INITIAL_SECONDS", "2")
    monkeypatch.setenv("TRANSITION_BACKOFF_MAX_SECONDS", "1")
    with pytest.raises(SettingsError, match="TRANSITION_BACKOFF_MAX_SECONDS"):
        load_settings()


def test_secret_values_are_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCORD_TOKEN", "secret value with spaces")
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert "secret value" not in str(info.value)


def test_dotenv_file_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("TRANSITION_MAX_ATTEMPTS=7\nLOG_LEVEL=debug\n")
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.transition_max_attempts == 7 and settings.log_level == "DEBUG"


def test_entrypoint_fails_at_start_with_one_line(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "TRANSITION_MAX_ATTEMPTS": "zero",
           "PYTHONPATH": str(ROOT), "DATA_DIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "bot", "migrate"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "TRANSITION_MAX_ATTEMPTS" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "pg").exists()  # nothing was started


def test_the_console_is_off_until_its_secrets_are_set_and_says_which() -> None:
    bare = load_settings(_env_file=None)
    assert bare.console_off_reason() == (
        "the console is off: set DISCORD_CLIENT_SECRET, CONSOLE_SESSION_SECRET, "
        "DISCORD_CLIENT_ID (or DISCORD_TOKEN)")
    # A bot token's first part is the bot's (= the application's) id in base64.
    on = load_settings(_env_file=None, discord_token="MTIzNDU2Nzg5MDEyMzQ1Njc4.Gx.abc",
                       discord_client_secret="s3cret", console_session_secret="k" * 32,
                       api_port=8123)
    assert on.console_off_reason() is None
    assert on.oauth_client_id == "123456789012345678"
    assert on.console_base_url == "http://127.0.0.1:8123"
    assert load_settings(_env_file=None, discord_client_id="42").oauth_client_id == "42"


def test_a_misspelled_name_in_dotenv_is_named_with_the_setting_it_looks_like(
        tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("CONSOLE_SESSION_SECRT=" + "s" * 40 + "\n"
                                   "log_level=info\nDATABASE_URL=postgresql://127.0.0.1:1/x\n")
    assert unknown_dotenv_settings(tmp_path / ".env") == [
        f"{tmp_path / '.env'} sets CONSOLE_SESSION_SECRT, which is not a Lifeline setting "
        "(ignored): did you mean CONSOLE_SESSION_SECRET?"]
    assert unknown_dotenv_settings(tmp_path / "missing.env") == []
    # Start-up says so on stderr, and goes on (here to a database that is not there).
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "DATA_DIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "bot", "migrate"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    lines = proc.stderr.strip().splitlines()
    assert lines[0] == "lifeline: warning: .env sets CONSOLE_SESSION_SECRT, which is not a " \
        "Lifeline setting (ignored): did you mean CONSOLE_SESSION_SECRET?", proc.stderr
    assert "s" * 40 not in proc.stderr and "Traceback" not in proc.stderr
