"""Shared W&B settings carried in Flyte's run context (a str -> str mapping), with an exact codec."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import TracebackType
from typing import Any, Final, Literal, TypeVar

from .. import _keys as keys
from ._options import RANK_SCOPES, RUN_MODES, WANDB_MODES, RankScope, RunMode, WandbMode, check_choice

__all__ = [
    "INIT_FIELDS",
    "NOT_INHERITED",
    "TRIAL_FIELDS",
    "USER_FIELDS",
    "WandbConfig",
    "WandbContext",
    "cleared",
    "decode_config",
    "wandb_config",
]

logger = logging.getLogger("flyteplugins_wandb")

# W&B's server limits: a longer tag or name fails the run when it is created or synced.
MAX_TAG_LENGTH: Final = 64
MAX_NAME_LENGTH: Final = 128

# Keywords of wandb.init that the plugin derives from the layout, so they cannot be given as plain settings (a run id
# is given as the ``id`` field, which the planner takes).
RESERVED_INIT_KEYWORDS: Final = frozenset({"reinit"})

# Keywords of wandb.init (SDK 0.31) that may be passed through. tests/test_public_api.py checks this list against
# the installed wandb, so a new SDK keyword is noticed, not silently rejected.
WANDB_INIT_KEYWORDS: Final = frozenset(
    {
        "entity", "project", "dir", "id", "name", "notes", "tags", "config", "config_exclude_keys",
        "config_include_keys", "allow_val_change", "group", "job_type", "mode", "force", "reinit", "resume",
        "resume_from", "fork_from", "save_code", "tensorboard", "sync_tensorboard", "monitor_gym", "settings",
        "anonymous",
    }
)  # fmt: skip


def _check_json(field_name: str, value: object) -> None:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{field_name} must be JSON-serializable for the run context, got {value!r}: {e}") from e


Place = Literal["shared", "kwargs", "private"]


def _setting(*, init: bool = False, inherited: bool = False, user: bool = True, place: Place = "private") -> Any:
    """A ``WandbConfig`` field and its roles. Every field travels in the run context (unset fields are left out).

    - ``init``: passed to ``wandb.init`` under its own name when set;
    - ``inherited``: handed on to the tasks a tracked task launches (what describes one run or its layout is not);
    - ``user``: users set it (``wandb_config``, ``@wandb_init``); the plugin sets the others for its own tasks;
    - ``place``: where it travels: ``shared``, under ``wandb_<name>`` (a field Flyte's public W&B plugin has too);
      ``kwargs``, inside the ``wandb_kwargs`` object (a wandb.init keyword the public plugin passes on from there);
      ``private``, under ``_wandb_<name>`` (only this plugin has it; the public plugin does not read that prefix).
    """
    return field(default=None, metadata={"init": init, "inherited": inherited, "user": user, "place": place})


@dataclass(frozen=True)
class WandbConfig:
    """W&B settings shared by a run and every task it launches. All fields are optional; None means "not set".

    ``host`` is the W&B web address used for the Flyte links (default ``https://wandb.ai``); it is never passed
    to ``wandb.init``. ``init_kwargs`` holds further ``wandb.init`` keywords (JSON values only). ``group`` is the
    user's group; the layout decides each run's group from it (see the README's tables).
    """

    project: str | None = _setting(init=True, inherited=True, place="shared")
    entity: str | None = _setting(init=True, inherited=True, place="shared")
    host: str | None = _setting(inherited=True)
    id: str | None = _setting(place="shared")
    """The run id of a task whose layout has one run (the planner refuses it where a layout needs several); a task's
    children do not inherit it."""
    name: str | None = _setting(init=True, place="shared")
    notes: str | None = _setting(init=True, place="kwargs")
    group: str | None = _setting(place="shared")
    job_type: str | None = _setting(init=True, place="kwargs")
    mode: WandbMode | None = _setting(inherited=True, place="shared")
    """Resolved with ``WANDB_MODE`` before it reaches ``wandb.init``."""
    dir: str | None = _setting(init=True, inherited=True, place="kwargs")
    run_mode: RunMode | None = _setting(place="shared")
    rank_scope: RankScope | None = _setting(place="shared")
    tags: tuple[str, ...] | None = _setting(init=True, inherited=True, place="shared")
    config: Mapping[str, Any] | None = _setting(inherited=True, place="shared")
    """Secret-looking entries are dropped and the run's provenance is added before it reaches ``wandb.init``."""
    init_kwargs: Mapping[str, Any] | None = _setting(inherited=True, place="kwargs")
    download_logs: bool | None = _setting(inherited=True, place="shared")
    """Save online runs' files to Flyte's storage after the task too (offline runs are always saved)."""
    parent_run_id: str | None = _setting(user=False)
    """The run of the task that launched this one."""
    parent_group: str | None = _setting(user=False)
    trial_run_id: str | None = _setting(user=False)
    """Set by ``run_sweep``: the run id a W&B sweep server assigned to this trial (its id base)."""
    trial_sweep_id: str | None = _setting(user=False)
    """Set by ``run_sweep``: the server sweep this trial's run reports to (``wandb.Settings(sweep_id=...)``)."""
    report: bool | None = _setting(inherited=True)
    """Give each decorated task a "Weights & Biases" Flyte report tab (runs table and metric charts)."""

    def inheritable(self) -> WandbConfig:
        """What a task's children inherit: the fields marked ``inherited``. A layout given in the run context
        reaches the children through the context itself; a sweep trial's identity never does (a trial's child is
        not a trial)."""
        return dataclasses.replace(self, **dict.fromkeys(NOT_INHERITED))

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if f.name == "tags":
                if isinstance(value, str) or not all(isinstance(t, str) for t in value):
                    raise TypeError(f"tags must be a sequence of str, got {value!r}")
                for tag in value:
                    # The W&B server refuses such a tag (400) when the run is created or synced, losing the run.
                    if not 1 <= len(tag) <= MAX_TAG_LENGTH:
                        raise ValueError(
                            f"each tag must be 1 to {MAX_TAG_LENGTH} characters (W&B's limit), got {tag!r}"
                        )
                object.__setattr__(self, "tags", tuple(value))
            elif f.name in ("config", "init_kwargs"):
                if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
                    raise TypeError(f"{f.name} must be a mapping with str keys, got {value!r}")
                _check_json(f.name, dict(value))
                # No extra keywords and none at all are the same setting; one spelling keeps the codec exact.
                object.__setattr__(self, f.name, None if f.name == "init_kwargs" and not value else dict(value))
            elif f.name in ("report", "download_logs"):
                if not isinstance(value, bool):
                    raise TypeError(f"{f.name} must be a bool, got {type(value).__name__} {value!r}")
            elif not isinstance(value, str):
                raise TypeError(f"{f.name} must be a str, got {type(value).__name__} {value!r}")
        for name in _UNSETTABLE:
            if getattr(self, name) == "":
                raise ValueError(f"{name} must be a non-empty str or None, got ''")
        if self.name is not None and len(self.name) > MAX_NAME_LENGTH:
            raise ValueError(f"name must be at most {MAX_NAME_LENGTH} characters (W&B's limit), got {self.name!r}")
        if self.run_mode is not None:
            check_choice("run_mode", self.run_mode, RUN_MODES)
        if self.rank_scope is not None:
            check_choice("rank_scope", self.rank_scope, RANK_SCOPES)
        if self.mode is not None:
            check_choice("mode", self.mode, WANDB_MODES)
        for key in self.init_kwargs or {}:
            if key in RESERVED_INIT_KEYWORDS or key == "settings":
                raise ValueError(f"{key!r} cannot be set through wandb_config: the plugin derives it from the layout")
            if key in _FIELD_NAMES:
                raise ValueError(f"give {key!r} as wandb_config({key}=...), not inside init_kwargs")
            if key not in WANDB_INIT_KEYWORDS:
                raise ValueError(f"{key!r} is not a wandb.init keyword; known: {sorted(WANDB_INIT_KEYWORDS)}")

    def merged_over(self, base: WandbConfig) -> WandbConfig:
        """This config with ``base`` filling what this one leaves unset. Mappings (``config``, ``init_kwargs``)
        merge key by key, this config's keys winning; every other field is taken whole."""
        changes: dict[str, Any] = {}
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(base, f.name)
            if mine is None:
                continue
            changes[f.name] = {**theirs, **mine} if f.name in _MAPPINGS and theirs is not None else mine
        return dataclasses.replace(base, **changes)

    def to_context(self) -> dict[str, str]:
        """Encode as run-context entries; unset fields are left out. The keys are those Flyte's public W&B plugin
        reads and writes for the fields it has too (see ``_keys``)."""
        out: dict[str, str] = {}
        kwargs: dict[str, Any] = dict(self.init_kwargs or {})
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or f.name == "init_kwargs":
                continue
            if f.metadata["place"] == "kwargs":
                kwargs[f.name] = value
                continue
            # Structured fields are JSON; strings travel as they are, so "2024" stays the string "2024".
            out[_KEYS[f.name]] = value if isinstance(value, str) else json.dumps(_plain(value))
        if kwargs:
            out[keys.INIT_KWARGS_KEY] = json.dumps(kwargs)
        return out

    def to_dict(self) -> dict[str, str]:
        """The run-context entries (as ``flyteplugins-wandb``'s config objects offer them): ``to_context()``."""
        return self.to_context()


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else dict(value) if isinstance(value, Mapping) else value


def _key(f: dataclasses.Field[Any]) -> str:
    if f.name == "parent_run_id":
        return keys.PARENT_RUN_KEY
    prefix = keys.CONTEXT_PREFIX if f.metadata["place"] == "shared" else keys.PRIVATE_PREFIX
    return prefix + f.name


_FIELD_NAMES: Final = frozenset(f.name for f in fields(WandbConfig))
_KEYS: Final = {f.name: _key(f) for f in fields(WandbConfig) if f.metadata["place"] != "kwargs"}
"""The run-context key of each field that has one of its own (the others travel inside ``wandb_kwargs``)."""
_NAMES: Final = {key: name for name, key in _KEYS.items()}
INIT_FIELDS: Final = tuple(f.name for f in fields(WandbConfig) if f.metadata["init"])
"""Fields passed to ``wandb.init`` under their own names."""
NOT_INHERITED: Final = tuple(f.name for f in fields(WandbConfig) if not f.metadata["inherited"])
USER_FIELDS: Final = tuple(f.name for f in fields(WandbConfig) if f.metadata["user"])
_UNSETTABLE: Final = frozenset({"id", *(f.name for f in fields(WandbConfig) if not f.metadata["user"])})
"""Fields a task can unset for the tasks it launches (``cleared``): the plugin's own, and the run id, which names
one task's run, not its children's."""
TRIAL_FIELDS: Final = ("trial_run_id", "trial_sweep_id")


def cleared(*names: str) -> dict[str, str]:
    """Run-context entries that unset the plugin's own fields (parent run, trial identity) for the tasks launched
    beneath: ``to_context`` leaves unset fields out, so without these an inherited value would stay in force. The
    codec decodes such an empty value as unset; users' fields keep ``""`` as a real value."""
    bad = sorted(set(names) - _UNSETTABLE)
    if bad:
        allowed = sorted(_UNSETTABLE)
        raise ValueError(f"only the plugin's own fields can be cleared, and the run id ({allowed}), got {bad}")
    return {_KEYS[name]: "" for name in names}


_MAPPINGS: Final = frozenset({"config", "init_kwargs"})
_BOOLS: Final = frozenset({"report", "download_logs"})
_STRUCTURED: Final = _MAPPINGS | {"tags"} | _BOOLS


def decode_config(context: Mapping[str, str] | None) -> WandbConfig:
    """Read the W&B settings from a run context: this plugin's entries, and those Flyte's public W&B plugin writes
    (the same keys, see ``_keys``). Unknown ``wandb_*``/``_wandb_*`` keys are ignored (a newer or older plugin may
    have written them); a malformed value raises ValueError naming the key."""
    values: dict[str, Any] = {}
    kwargs: dict[str, Any] | None = None
    for key, raw in (context or {}).items():
        if key == keys.INIT_KWARGS_KEY:
            kwargs = _decode_kwargs(raw)
            continue
        name = _NAMES.get(key)
        if name is None:
            if key.startswith((keys.CONTEXT_PREFIX, keys.PRIVATE_PREFIX)):
                logger.debug("ignoring unknown run-context key %r", key)
            continue
        if raw == "" and name in _UNSETTABLE:
            continue  # how a task unsets an inherited field of the plugin's for the tasks beneath (see cleared)
        values[name] = _decode_value(key, name, raw)
    if kwargs is not None:
        values.update(_split_kwargs(kwargs, values))
    try:
        return WandbConfig(**values)
    except (TypeError, ValueError) as e:
        raise ValueError(f"invalid W&B settings in the run context: {e}") from None


def _decode_value(key: str, name: str, raw: str) -> Any:
    if name not in _STRUCTURED:
        return raw
    if name in _BOOLS and raw in ("True", "False"):
        return raw == "True"  # Python's spelling, as another writer may use it
    try:
        return json.loads(raw)
    except json.JSONDecodeError as e:
        raise ValueError(f"run-context key {key!r} must hold JSON, got {raw!r}: {e}") from None


def _decode_kwargs(raw: str) -> dict[str, Any]:
    try:
        kwargs = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ValueError(f"run-context key {keys.INIT_KWARGS_KEY!r} must hold JSON, got {raw!r}: {e}") from None
    if not isinstance(kwargs, dict):
        raise ValueError(f"run-context key {keys.INIT_KWARGS_KEY!r} must hold a JSON object, got {raw!r}")
    return kwargs


def _split_kwargs(kwargs: dict[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """The fields inside a ``wandb_kwargs`` object (``notes``, ``job_type``, ``dir``; ``host`` or ``id`` as the
    public plugin writes them there), and the other keywords as ``init_kwargs``. A field's own key wins over its
    copy in the object; a keyword the layout decides (``reinit``, ``settings``) is dropped with a warning."""
    fields_: dict[str, Any] = {}
    rest: dict[str, Any] = {}
    for key, value in kwargs.items():
        if key in _FIELD_NAMES and key in USER_FIELDS:
            if key not in given:
                fields_[key] = value
        elif key in RESERVED_INIT_KEYWORDS or key == "settings":
            logger.warning("ignoring %r in the run context's %s: the layout decides it", key, keys.INIT_KWARGS_KEY)
        else:
            rest[key] = value
    return {**fields_, "init_kwargs": rest or None}


# What an unset layout field reads as on a ``wandb_config(...)`` value: the default the layout applies.
_LAYOUT_DEFAULTS: Final = {"run_mode": "auto", "rank_scope": "global"}


_Entries = TypeVar("_Entries", bound="ContextEntries")


class ContextEntries(dict[str, str]):
    """Run-context entries (a ``dict[str, str]`` for ``custom_context``) that also apply as ``with entries:`` inside
    a task, to the tasks launched in the block; ``to_dict()`` gives them as a plain dict."""

    def to_dict(self) -> dict[str, str]:
        """The run-context entries as a plain ``dict[str, str]``."""
        return dict(self)

    def _in_block(self, outer: Mapping[str, str]) -> dict[str, str]:
        """The entries a ``with`` block sets over the enclosing run context ``outer``."""
        return dict(self)

    def __enter__(self: _Entries) -> _Entries:
        import flyte

        tctx = flyte.ctx()
        self._block = flyte.custom_context(**self._in_block((tctx.custom_context or {}) if tctx else {}))
        self._block.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._block.__exit__(exc_type, exc, tb)


class WandbContext(ContextEntries):
    """The run-context entries of a :class:`WandbConfig`: pass it to ``flyte.with_runcontext(custom_context=...)``
    (combine with ``{**a, **b}``), or use it as ``with wandb_config(...):`` inside a task to change the settings
    of the tasks launched in the block.

    Its fields read as attributes, as on ``flyteplugins-wandb``'s config object: ``cfg.project``, ``cfg.tags``,
    ``cfg.config`` (the run's config mapping), ``cfg.run_mode`` (``"auto"`` when unset), ``cfg.rank_scope``
    (``"global"`` when unset)...; ``cfg.settings`` is the frozen :class:`WandbConfig` and ``cfg.to_dict()`` the
    entries as a plain dict.
    """

    settings: WandbConfig

    def __init__(self, config: WandbConfig) -> None:
        super().__init__(config.to_context())
        self.settings = config

    def __getattr__(self, name: str) -> Any:
        # Only called for names that are not attributes of the dict itself: the config's fields.
        if name not in _FIELD_NAMES:
            raise AttributeError(f"{type(self).__name__!r} has no attribute {name!r}; fields: {sorted(_FIELD_NAMES)}")
        value = getattr(self.settings, name)
        return _LAYOUT_DEFAULTS.get(name) if value is None else value

    def _in_block(self, outer: Mapping[str, str]) -> dict[str, str]:
        return _merged_kwargs(self, outer)


def _merged_kwargs(entries: Mapping[str, str], outer: Mapping[str, str]) -> dict[str, str]:
    """``entries`` with their ``wandb_kwargs`` merged over the enclosing context's: the keywords inside it (``notes``,
    ``job_type``, ``dir``, ``resume``...) are separate settings, so an inner block that sets one keeps the others."""
    inner_raw, outer_raw = entries.get(keys.INIT_KWARGS_KEY), outer.get(keys.INIT_KWARGS_KEY)
    if inner_raw is None or not outer_raw:
        return dict(entries)
    merged = {**_decode_kwargs(outer_raw), **_decode_kwargs(inner_raw)}
    return {**entries, keys.INIT_KWARGS_KEY: json.dumps(merged)}


def wandb_config(
    *,
    project: str | None = None,
    entity: str | None = None,
    host: str | None = None,
    id: str | None = None,
    name: str | None = None,
    notes: str | None = None,
    group: str | None = None,
    job_type: str | None = None,
    tags: list[str] | tuple[str, ...] | None = None,
    config: Mapping[str, Any] | None = None,
    mode: WandbMode | None = None,
    dir: str | None = None,
    run_mode: RunMode | None = None,
    rank_scope: RankScope | None = None,
    report: bool | None = None,
    download_logs: bool | None = None,
    **init_kwargs: Any,
) -> WandbContext:
    """W&B settings for a whole Flyte run: ``flyte.with_runcontext(custom_context=wandb_config(...)).run(...)``.

    Every decorated task of the run reads them; arguments of ``@wandb_init`` take precedence over them, and they
    take precedence over ``WANDB_*`` environment variables. Bad values raise here, before anything is launched.
    ``report=True`` gives every decorated task of the run a "Weights & Biases" report tab (see ``wandb_init``).
    ``download_logs=True`` saves the files of online runs to Flyte's storage too (see ``@wandb_init``). ``id``
    names the run of the task launched with these settings where its layout has one run (not its children's);
    a layout with several runs refuses it (see ``plan``).
    """
    return WandbContext(
        WandbConfig(
            project=project,
            entity=entity,
            host=host,
            id=id,
            name=name,
            notes=notes,
            group=group,
            job_type=job_type,
            tags=tuple(tags) if tags is not None and not isinstance(tags, str) else tags,
            config=config,
            mode=mode,
            dir=dir,
            run_mode=run_mode,
            rank_scope=rank_scope,
            report=report,
            download_logs=download_logs,
            init_kwargs=init_kwargs or None,
        )
    )
