"""What the LLM is told about an environment: built from the env adapter's :class:`~llm_reward.envs.TaskSpec`
plus a short random rollout (the ``info`` keys actually seen), every field overridable by the user.

    >>> context = env_context("CartPole-v1")  # doctest: +SKIP
    >>> print(context.as_text())  # doctest: +SKIP
    Task: Balance a pole on a cart ...
    Observation (obs and next_obs: numpy float32 array of shape (4,)):
      obs[0] cart position (m)
    ...
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Mapping

import numpy as np

MAX_LAYOUT_LINES = 48
#: Info keys the reward code never sees: the env's own reward and our progress oracle would let it copy the
#: "human" baseline instead of writing a reward (the env's named reward terms are hidden too).
ALWAYS_HIDDEN = ("env_reward", "progress", "caption", "episode", "TimeLimit.truncated")
MAX_SOURCE_CHARS = 1200
#: The head of the described info keys: a small coder subtracts tuples, indexes numbers and reads positions out of
#: the observation unless told plainly what an info value is (one number) and when it is measured.
INFO_HEAD = ("info (prefer these keys over indexing the observation): on every step, the state after the action "
             "(no info holds the state before it). "
             "Every value is one plain Python number (int or float), never a tuple, list or array: a position is "
             "two keys, x and y. To subtract positions, build arrays first: np.array([info['a_x'], info['a_y']]) - "
             "np.array([info['b_x'], info['b_y']]); or use abs(ax - bx) + abs(ay - by).")


class ContextError(ValueError):
    """The env cannot be described well enough to write reward code for it (names the config key to set)."""


@dataclass(frozen=True)
class EnvContext:
    """The prompt's view of one env. Every field may be overridden (``context.<field>=...`` in the Hydra app)."""

    env_id: str
    description: str
    observation: str            # how obs/next_obs look: one line per field, or free text
    action: str
    success: str | None
    info_keys: list[str] = field(default_factory=list)
    reward_terms: list[str] = field(default_factory=list)
    observation_source: str | None = None
    hidden_info_keys: list[str] = field(default_factory=lambda: list(ALWAYS_HIDDEN))
    end_only_info_keys: list[str] = field(default_factory=list)
    info_meanings: dict[str, str] = field(default_factory=dict)  # info key -> one line (MiniGrid's grid state)
    #: The env adapter's milestone names (:class:`~llm_reward.envs.Milestone`): how many training episodes reached
    #: each is part of the reflection on a candidate, never of the task text (``[]`` turns that off).
    milestones: list[str] = field(default_factory=list)

    def as_text(self) -> str:
        """The compact block that goes into the prompt."""
        lines = [f"Environment: {self.env_id}", f"Task: {self.description}"]
        if self.success:
            lines.append(f"Success (what the agent is scored on): {self.success}")
        lines += [self.observation, f"Action: {self.action}"]
        described = [k for k in self.info_meanings if k in self.info_keys]
        if described:
            lines.append(INFO_HEAD)
            lines += [f"  info[{key!r}]: {self.info_meanings[key]}" for key in described]
        others = [k for k in self.info_keys if k not in described]
        if others:
            lines.append(("other " if described else "") + "info keys available (numbers): " + ", ".join(others))
        if self.end_only_info_keys:
            lines.append("only on an episode's last step (use info.get(key, 0.0)): "
                         + ", ".join(self.end_only_info_keys))
        if self.observation_source:
            lines += ["The env computes its observation like this:", "```python", self.observation_source, "```"]
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("info_meanings", "milestones"):  # absent when unused: other envs' run-directory identity stays
            if not out[key]:
                del out[key]
        return out

    def with_overrides(self, overrides: Mapping[str, Any] | None) -> EnvContext:
        """A copy with user-given fields replaced (unknown keys raise, naming ``context.<key>``)."""
        if not overrides:
            return self
        unknown = sorted(set(overrides) - set(self.__dataclass_fields__) - {"env_id"})
        if unknown:
            raise ContextError(f"unknown context key(s) {['context.' + k for k in unknown]}; allowed: "
                               f"{sorted(set(self.__dataclass_fields__) - {'env_id'})}")
        values = {k: v for k, v in overrides.items() if v is not None}
        for key in ("info_keys", "reward_terms", "hidden_info_keys", "end_only_info_keys", "milestones"):
            if key in values:
                values[key] = list(values[key])
        if "info_meanings" in values:
            values["info_meanings"] = {str(k): str(v) for k, v in dict(values["info_meanings"]).items()}
        return replace(self, **values)


def env_context(env_id: str, overrides: Mapping[str, Any] | None = None, *, success: str | None = None,
                rollout_steps: int = 50, seed: int = 0) -> EnvContext:
    """Build the context of ``env_id`` and check it can drive a search: a task description and a success metric.

    ``success`` is a criterion over the final step's info (``"mean_forward_velocity >= 0.5"``) replacing the
    adapter's. The observation lines describe what the *agent* sees (after the adapter's observation wrapper);
    the env's observation code is included only when the layout documents no meaning. Raises
    :class:`ContextError` (naming ``context.description`` or ``context.success``) before any LLM call.
    """
    from llm_reward.envs import get_adapter, task_spec

    try:
        spec = task_spec(env_id, success=success)
        milestones = [m.name for m in get_adapter(env_id).milestones]
    except ValueError as exc:
        raise ContextError(f"env={env_id!r}: {exc}") from None
    sample, info_keys, end_only = _rollout_view(env_id, rollout_steps, seed, success)
    layout = _matching_layout(list(spec.observation_layout or []), sample)
    meanings = {k: v for k, v in (spec.info_meanings or {}).items() if k in info_keys and k not in end_only}
    observation = _observation_text(layout, sample, info_described=bool(meanings))
    documented = any("undocumented" not in (f.meaning or "undocumented") for f in layout) or "\n  " in observation
    hidden = [*ALWAYS_HIDDEN, *(spec.reward_terms or [])]
    context = EnvContext(
        env_id=env_id, description=(spec.description or "").strip(), observation=observation,
        action=str(spec.action_space), success=spec.success_criterion,
        info_keys=[k for k in (info_keys or spec.info_keys or []) if k not in hidden and k not in end_only],
        end_only_info_keys=[k for k in end_only if k not in hidden],
        reward_terms=list(spec.reward_terms or []),
        observation_source=None if documented else _trim_source(spec.observation_source), hidden_info_keys=hidden,
        info_meanings={k: v for k, v in meanings.items() if k not in hidden}, milestones=milestones)
    context = context.with_overrides(overrides)
    check_context(context)
    return context


def check_context(context: EnvContext) -> None:
    if not context.description or not context.description.strip():
        raise ContextError(f"env {context.env_id!r} has no task description; set context.description='...'")
    if not context.success:
        raise ContextError(f"env {context.env_id!r} has no success metric (info['is_success']); register one with "
                           f"the env adapter or set context.success='...' to describe the one the adapter reports")


def _rollout_view(env_id: str, steps: int, seed: int,
                  success: str | None) -> tuple[Any, list[str], list[str]]:
    """An agent-facing observation, the numeric ``info`` keys seen in ``steps`` random steps, and those of them
    missing from some step (e.g. ``is_success``, set on an episode's last step only)."""
    from llm_reward.envs import make_env

    env = make_env(env_id, seed=seed, success=success)
    keys: dict[str, int] = {}
    try:
        sample, _ = env.reset(seed=seed)
        for _ in range(steps):
            obs, _, terminated, truncated, info = env.step(env.action_space.sample())
            for key, value in info.items():
                if isinstance(value, (bool, int, float, np.number, np.bool_)) and key not in ("episode",):
                    keys[key] = keys.get(key, 0) + 1
            if terminated or truncated:
                env.reset()
    finally:
        env.close()
    return sample, list(keys), [k for k, n in keys.items() if n < steps]


def _matching_layout(layout: list[Any], sample: Any) -> list[Any]:
    """The documented fields that index the agent's observation as it is (a wrapper may have changed it)."""
    if isinstance(sample, dict):
        return [f for f in layout if f.key in sample]
    array = np.asarray(sample)
    if array.ndim == 1:
        return [f for f in layout if f.key is None and f.index < array.shape[0]]
    return []


def _image_text(array: np.ndarray, info_described: bool = False) -> str:
    """MiniGrid's symbolic view, the one multi-dimensional observation worth a special description; in one line
    when ``info`` describes the grid (a small coder indexes ids it is given, and gets them wrong)."""
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[-1] != 3:
        return ""
    size = array.shape[0]
    if info_described:
        return (f"  The agent's egocentric {size}x{size} view: each cell holds (object, color, state) ids, not "
                f"coordinates; no slice of obs or next_obs is a position (obs[0:2] is two rows of ids). Do not index "
                f"them: the info keys below give every position and the grid's state.")
    try:
        from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX, STATE_TO_IDX
    except ImportError:
        return ""
    return (f"  The agent's egocentric {size}x{size} view: obs[i, j] = (object, color, state) of the cell i columns "
            f"from the left and j rows from the top; the agent is at obs[{size // 2}, {size - 1}] facing up "
            f"(toward j = 0).\n  object ids: {_ids(OBJECT_TO_IDX)}\n  color ids: {_ids(COLOR_TO_IDX)}\n"
            f"  state ids (doors): {_ids(STATE_TO_IDX)}")


def _ids(mapping: dict[str, int]) -> str:
    return ", ".join(f"{value} {name}" for name, value in mapping.items())


def _shape_of(obs: Any) -> Any:
    if isinstance(obs, dict):
        return {key: _shape_of(value) for key, value in obs.items()}
    array = np.asarray(obs)
    return f"numpy {array.dtype} array of shape {tuple(array.shape)}"


def _observation_text(layout: list[Any], sample: Any, info_described: bool = False) -> str:
    shape = _shape_of(sample)
    if isinstance(shape, dict):
        head = "Observation (obs and next_obs: dict of " + ", ".join(f"{k!r}: {v}" for k, v in shape.items()) + "):"
    else:
        head = f"Observation (obs and next_obs: {shape}):"
    lines = [head]
    if not layout and not isinstance(sample, dict):
        image = _image_text(np.asarray(sample), info_described)
        if image:
            lines.append(image)
    for item in layout[:MAX_LAYOUT_LINES]:
        key, index = getattr(item, "key", None), getattr(item, "index", "?")
        where = f"obs[{key!r}][{index}]" if key is not None else f"obs[{index}]"
        meaning = getattr(item, "meaning", "") or getattr(item, "name", "")
        unit = getattr(item, "unit", "")
        lines.append(f"  {where} {meaning}" + (f" ({unit})" if unit else ""))
    if len(layout) > MAX_LAYOUT_LINES:
        lines.append(f"  ... {len(layout) - MAX_LAYOUT_LINES} more entries (contact forces and the like)")
    return "\n".join(lines)


def _trim_source(source: str | None) -> str | None:
    if not source:
        return None
    source = source.strip()
    return source if len(source) <= MAX_SOURCE_CHARS else source[:MAX_SOURCE_CHARS] + "\n    # ... (truncated)"
