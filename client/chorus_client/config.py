"""Which Chorus to talk to and with which token, found as other cloud command lines find theirs.

In order, the first that names the API wins:
1. `local` (`--local [READY_FILE]`): a running `make local`, through the ready file it writes
   (`api_url`, `api_token`); by default the `.chorus-local.json` of the repository the `chorus`
   command belongs to, else the first one in the working directory or above it.
2. `profile` (`--profile NAME`): that profile of the config file; it must exist.
3. CHORUS_API_URL and CHORUS_API_TOKEN.
4. The profile CHORUS_PROFILE names, else `default`, if the config file has it.
Steps 2-4 are looked at for the URL and the token separately, so a profile may hold the URL while
CHORUS_API_TOKEN holds the token.

The config file is CHORUS_CONFIG_FILE, else $XDG_CONFIG_HOME/chorus/config.toml, else
~/.config/chorus/config.toml; one table per profile:

    [default]
    api_url = "https://abc123.execute-api.us-east-1.amazonaws.com/v1"
    api_token = "chr_…"

    [staging]
    api_url = "https://def456.execute-api.eu-west-1.amazonaws.com/v1"
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chorus_client.errors import ChorusClientError

URL_VARIABLE, TOKEN_VARIABLE = "CHORUS_API_URL", "CHORUS_API_TOKEN"
PROFILE_VARIABLE, CONFIG_VARIABLE = "CHORUS_PROFILE", "CHORUS_CONFIG_FILE"
DEFAULT_PROFILE = "default"
READY_FILE_NAME = ".chorus-local.json"


class ConfigError(ChorusClientError):
    """No API could be found, or its configuration cannot be read (a usage error)."""


@dataclass(frozen=True)
class Settings:
    url: str
    token: str
    source: str  # where they came from, for messages


def config_file(env: Mapping[str, str] = os.environ) -> Path:
    if env.get(CONFIG_VARIABLE):
        return Path(env[CONFIG_VARIABLE]).expanduser()
    base = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else Path.home() / ".config"
    return base / "chorus" / "config.toml"


def find_ready_file(start: Path | None = None) -> Path | None:
    """The first `.chorus-local.json` in `start` (the working directory) or a folder above it."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / READY_FILE_NAME).is_file():
            return folder / READY_FILE_NAME
    return None


def local(ready_file: Path | None = None) -> Settings:
    """A running `make local`, from the ready file it writes when it is up."""
    path = ready_file or find_ready_file()
    if path is None:
        raise ConfigError(f"no {READY_FILE_NAME} here or above: is `make local` running? (or give --local FILE)")
    try:
        ready: Any = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"no ready file at {path}: is `make local` running?") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the ready file {path}: {exc}") from None
    url, token = (ready.get("api_url"), ready.get("api_token")) if isinstance(ready, dict) else (None, None)
    if not isinstance(url, str) or not url or not isinstance(token, str) or not token:
        raise ConfigError(f"{path} names no api_url and api_token: is it a `make local` ready file?")
    return Settings(url, token, f"the local stack ({path})")


def _profiles(path: Path) -> dict[str, Any]:
    try:
        document = tomllib.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    return document


def _profile(profiles: Mapping[str, Any], name: str, path: Path) -> dict[str, str]:
    table = profiles.get(name)
    if not isinstance(table, dict):
        raise ConfigError(f"no profile {name!r} in {path}")
    known = {"api_url", "api_token"}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(
            f"profile {name!r} in {path} has unknown keys {', '.join(unknown)} (known: api_url, api_token)"
        )
    for key, value in table.items():
        if not isinstance(value, str):
            raise ConfigError(f"profile {name!r} in {path}: {key} must be a string")
    return dict(table)


def resolve(
    *,
    profile: str | None = None,
    local_file: Path | None = None,
    use_local: bool = False,
    env: Mapping[str, str] = os.environ,
) -> Settings:
    """The API to call: see the module's docstring for the order."""
    if use_local:
        return local(local_file)
    path = config_file(env)
    profiles = _profiles(path)
    sources: list[tuple[str, Mapping[str, str]]] = []
    if profile is not None:
        sources.append((f"profile {profile!r} of {path}", _profile(profiles, profile, path)))
    sources.append(
        ("the environment", {"api_url": env.get(URL_VARIABLE, ""), "api_token": env.get(TOKEN_VARIABLE, "")})
    )
    if profile is None:
        implied = env.get(PROFILE_VARIABLE) or DEFAULT_PROFILE
        if implied in profiles or env.get(PROFILE_VARIABLE):
            sources.append((f"profile {implied!r} of {path}", _profile(profiles, implied, path)))
    found: dict[str, tuple[str, str]] = {}
    for source, values in sources:
        for key in ("api_url", "api_token"):
            if key not in found and values.get(key):
                found[key] = (values[key], source)
    missing = [key for key in ("api_url", "api_token") if key not in found]
    if missing:
        raise ConfigError(
            f"no {' and no '.join(missing)}: set {URL_VARIABLE} and {TOKEN_VARIABLE}, write a profile in {path} "
            "(--profile NAME), or use --local for a running `make local`"
        )
    url, url_source = found["api_url"]
    token, token_source = found["api_token"]
    source = url_source if url_source == token_source else f"{url_source} and {token_source}"
    return Settings(url, token, source)
