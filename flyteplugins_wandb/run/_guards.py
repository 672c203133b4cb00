"""What keeps tracking from hanging or killing a job: a key check before training, bounded retries of
``wandb.init``, a bounded ``finish``, and a clean end on SIGTERM (preemption)."""

from __future__ import annotations

import contextlib
import logging
import netrc
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final, TypeVar
from urllib.parse import urlparse

from .. import _keys as keys

__all__ = [
    "DEFAULT_BASE_URL",
    "ApiKeyRefusedError",
    "MissingApiKeyError",
    "Preempted",
    "Timeout",
    "api_key",
    "bounded",
    "key_source",
    "refusal",
    "require_api_key",
    "retrying",
    "sigterm_ends_run",
    "wandb_base_url",
]

logger = logging.getLogger("flyteplugins_wandb")

T = TypeVar("T")

DEFAULT_BASE_URL: Final = "https://api.wandb.ai"
"""W&B's API server, where ``WANDB_BASE_URL`` is not set."""


class MissingApiKeyError(RuntimeError):
    """Online W&B mode, and no API key this process could use."""


class ApiKeyRefusedError(RuntimeError):
    """The W&B server refused this process's credentials (HTTP 401/403). Raised at the first refusal, before
    training starts, whatever ``strict`` says: every retry would be refused the same way."""


class Preempted(SystemExit):
    """SIGTERM arrived while the task ran (for example a preempted node)."""

    def __init__(self) -> None:
        super().__init__(128 + signal.SIGTERM)


def wandb_base_url(environ: Mapping[str, str]) -> str:
    """The address of the W&B API server that ``wandb`` would use: ``WANDB_BASE_URL``, else W&B's cloud."""
    return (environ.get(keys.WANDB_BASE_URL) or DEFAULT_BASE_URL).rstrip("/")


def api_key(environ: Mapping[str, str], base_url: str) -> str | None:
    """The API key W&B would use for ``base_url``: ``WANDB_API_KEY``, else the netrc entry for its host."""
    if environ.get(keys.WANDB_API_KEY):
        return environ[keys.WANDB_API_KEY]
    entry = _netrc_entry(environ, base_url)
    return entry[2] if entry else None


def _netrc_entry(environ: Mapping[str, str], base_url: str) -> tuple[str, str, str] | None:
    """(netrc file, machine, key) of the netrc entry for ``base_url``: wandb looks up ``host:port``; a plain
    ``host`` entry is accepted too (the same for W&B's cloud, which has no port)."""
    parts = urlparse(base_url)
    path = environ.get(keys.NETRC) or os.path.join(os.path.expanduser("~"), ".netrc")
    with contextlib.suppress(OSError, netrc.NetrcParseError):
        entries = netrc.netrc(path)
        for machine in dict.fromkeys(m for m in (parts.netloc, parts.hostname, base_url) if m):
            auth = entries.authenticators(machine)
            if auth and auth[2]:
                return path, machine, auth[2]
    return None


def require_api_key(environ: Mapping[str, str], settings: Any = None) -> None:
    """Fail before training starts, rather than let wandb prompt for a key in a worker that has no terminal."""
    base_url = wandb_base_url(environ)
    if api_key(environ, base_url) or environ.get(keys.WANDB_IDENTITY_TOKEN_FILE):
        return
    if settings is not None and getattr(settings, "api_key", None):
        return
    raise MissingApiKeyError(
        f"W&B is in online mode but no API key was found for {base_url}. On Flyte, give the task a secret as an "
        'environment variable: TaskEnvironment(..., secrets=flyte.Secret(key="wandb_api_key", '
        'as_env_var="WANDB_API_KEY")). Or set WANDB_MODE=offline (sync later with `wandb sync`), or disabled.'
    )


# wandb 0.31 reports a refused key as a CommError whose message carries the status ("returned error 401: ...",
# "HTTP 403: ..."); AuthenticationError is its own error for credentials it cannot use at all.
_REFUSED = re.compile(r"\b(?:returned error|HTTP|status(?: code)?)\s*:?\s*(401|403)\b", re.IGNORECASE)


def refusal(error: BaseException) -> str | None:
    """What says that ``error`` (raised by ``wandb.init``) is a refusal of the credentials (``HTTP 401``,
    ``HTTP 403``, or wandb's ``AuthenticationError``), or None for an error that may pass on a retry."""
    if type(error).__name__ == "AuthenticationError":
        return "AuthenticationError"
    found = _REFUSED.search(str(error))
    return f"HTTP {found.group(1)}" if found else None


def key_source(environ: Mapping[str, str], settings: Any = None) -> str:
    """Where the credentials this process sends to W&B come from, in wandb's own order of precedence."""
    if settings is not None and getattr(settings, "api_key", None) and "api_key" in settings.model_fields_set:
        return "wandb.Settings(api_key=...) given to @wandb_init"
    if environ.get(keys.WANDB_API_KEY):
        return f"the environment variable {keys.WANDB_API_KEY}"
    if environ.get(keys.WANDB_IDENTITY_TOKEN_FILE):
        return f"the identity token file {environ[keys.WANDB_IDENTITY_TOKEN_FILE]} ({keys.WANDB_IDENTITY_TOKEN_FILE})"
    entry = _netrc_entry(environ, wandb_base_url(environ))
    if entry:
        return f"the netrc file {entry[0]} (machine {entry[1]})"
    config_dir = environ.get(keys.WANDB_CONFIG_DIR) or os.path.join(os.path.expanduser("~"), ".config", "wandb")
    return f"wandb's settings file ({os.path.join(config_dir, 'settings')}) or a `wandb login` in this process"


def retrying(
    fn: Callable[[], T], *, attempts: int, backoff: float, what: str, permanent: tuple[type[BaseException], ...]
) -> T:
    """Call ``fn`` up to ``attempts`` times, sleeping ``backoff * 2**i`` between tries; ``permanent`` errors
    (bad arguments, which fail the same way every time) are raised at once."""
    for i in range(attempts):
        try:
            return fn()
        except permanent:
            raise
        except Exception as e:
            if i == attempts - 1:
                raise
            delay = backoff * 2**i
            logger.warning(
                "%s failed (%s: %s); retrying in %.1fs (%d/%d)", what, type(e).__name__, e, delay, i + 2, attempts
            )
            time.sleep(delay)
    raise AssertionError("unreachable")


class Timeout(TimeoutError):
    """A bounded call was still running when its time was up (it goes on in a daemon thread, abandoned)."""


def bounded(fn: Callable[[], T], timeout: float, what: str) -> T:
    """Return ``fn()``, run in a daemon thread, or raise :class:`Timeout` after ``timeout`` seconds.

    Its exception, if any, is raised here. A call that never returns (a W&B server that never answers) cannot
    hold the task: the thread is left behind, and the process can still exit.
    """
    outcome: list[tuple[bool, Any]] = []

    def call() -> None:
        try:
            outcome.append((True, fn()))
        except BaseException as e:
            outcome.append((False, e))

    worker = threading.Thread(target=call, name=f"flyteplugins-wandb: {what}", daemon=True)
    worker.start()
    worker.join(timeout)
    if not outcome:
        raise Timeout(f"{what} did not finish within {timeout:.0f}s")
    ok, value = outcome[0]
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]


@contextlib.contextmanager
def sigterm_ends_run() -> Iterator[None]:
    """While the body runs, turn SIGTERM into :class:`Preempted`, so the run is finished, not left "crashed".

    Only on the main thread, and only where SIGTERM still has its default action: a handler the user or a
    framework installed is left alone.
    """
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        yield
        return

    def on_sigterm(signum: int, frame: Any) -> None:
        raise Preempted()

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
