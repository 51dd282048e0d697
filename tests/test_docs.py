"""Every snippet in the README and the docs runs as written: Python blocks compile and run (unless marked
compile-only), app and benchmark commands compose with their overrides, and the rl-baselines3-zoo configs train with
the zoo itself."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.core.override_parser.overrides_parser import OverridesParser

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.suite.config import load_suite  # noqa: E402

# The pages whose snippets this file owns, relative to the repository root.
PAGES = ["README.md", "docs/index.md", "docs/concepts.md", "docs/howto.md", "docs/results.md"]
FENCE = re.compile(r"(<!-- snippet: compile-only -->\n)?```(\w+)\n(.*?)```", re.DOTALL)
APPS = {"llm-reward-train": "train", "llm-reward-annotate": "annotate", "llm-reward-fit": "fit",
        "llm-reward-eureka": "eureka", "llm-reward-rlaif": "rlaif"}


def blocks(language: str, pages: list[str] = PAGES) -> list[tuple[str, str, bool]]:
    """``(where, code, compile_only)`` for each fenced block of ``language``."""
    out = []
    for page in pages:
        text = (ROOT / page).read_text()
        for match in FENCE.finditer(text):
            if match.group(2) == language:
                line = text[:match.start()].count("\n") + 1
                out.append((f"{page}:{line}", match.group(3), bool(match.group(1))))
    return out


PYTHON = blocks("python")


@pytest.mark.parametrize("where,code,compile_only", PYTHON, ids=[w for w, _, _ in PYTHON])
def test_python_snippet_runs(where: str, code: str, compile_only: bool, tmp_path: Path) -> None:
    compile(code, where, "exec")
    if compile_only:
        return
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{where}:\n{done.stderr[-3000:]}"


def commands(pages: list[str] = PAGES) -> list[tuple[str, list[str]]]:
    """Each command line of the bash blocks, split like a shell, without leading VAR=value assignments."""
    out = []
    for where, code, _ in blocks("bash", pages):
        for line in code.splitlines():
            line = line.split(" #")[0].strip().rstrip("&").strip()
            if not line or line.startswith("#"):
                continue
            words = shlex.split(line)
            while words and re.match(r"^[A-Z_]+=", words[0]):
                words = words[1:]
            out.append((where, words))
    return out


def _first_of_each_sweep(overrides: list[str]) -> list[str]:
    """A multirun's first job: ``seed=0,1,2`` -> ``seed=0``."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    return [f"{o.get_key_element()}={next(iter(o.sweep_string_iterator()))}" if o.is_sweep_override() else o.input_line
            for o in parsed]


APP_LINES = [(w, c) for w, c in commands() if c[0] in APPS]


@pytest.mark.parametrize("where,words", APP_LINES, ids=[" ".join(c) for _, c in APP_LINES])
def test_app_command_composes(where: str, words: list[str]) -> None:
    overrides = [w for w in words[1:] if w != "-m" and not w.startswith("--")]
    overrides = [w for w in overrides if w != "hydra.launcher"]  # the value of --package
    with initialize_config_module("llm_reward.conf", version_base="1.3"):
        cfg = compose(APPS[words[0]], overrides=_first_of_each_sweep(overrides), return_hydra_config=True)
    assert "seed" in cfg and ("run_dir" in cfg or "out_dir" in cfg or "paths" in cfg), where


BENCH_LINES = [(w, c) for w, c in commands() if c[:3] == ["python", "-m", "benchmarks"]]


@pytest.mark.parametrize("where,words", BENCH_LINES, ids=[" ".join(c) for _, c in BENCH_LINES])
def test_benchmark_command_names_a_suite_and_valid_keys(where: str, words: list[str]) -> None:
    command, args = words[3], words[4:]
    assert command in ("run", "report", "list", "docs"), where
    if command in ("list", "docs"):
        return
    suite = [a.split("=", 1)[1] for a in args if a.startswith("suite=")]
    load_suite(suite[0], [a for a in args if not a.startswith("suite=")])


def test_every_command_in_the_docs_is_checked_somewhere() -> None:
    checked = {*APPS, "python", "pip"}
    external = {"vllm", "ollama", "llama-server"}  # servers a user runs; not installed here
    for where, words in commands():
        assert words[0] in checked | external, f"{where}: no test runs {words[0]!r}"
        if words[0] == "python":
            assert words[1:3] in (["-m", "benchmarks"], ["-m", "rl_zoo3.train"]), where


def _zoo_snippets() -> tuple[str, str, list[str]]:
    (conf_py,) = [code for _, code, _ in blocks("python", ["docs/howto.md"]) if "hyperparams = {" in code]
    (conf_yaml,) = [code for _, code, _ in blocks("yaml", ["docs/howto.md"]) if "vec_env_wrapper" in code]
    (train,) = [words for _, words in commands(["docs/howto.md"]) if words[:3] == ["python", "-m", "rl_zoo3.train"]]
    return conf_py, conf_yaml, train


def _reward_model(path: Path) -> None:
    """A small reward model distilled from oracle labels on DoorKey-5x5 (what llm-reward-fit writes)."""
    import llm_reward as L

    env_id = "MiniGrid-DoorKey-5x5-v0"
    rollouts = L.collect_stage(env_id, n_steps=300, n_envs=2, seed=0, path=path.parent / "rollouts.parquet",
                               progress=False)
    pairs = L.sample_pairs(rollouts, 48, unique_captions=True, seed=0)
    labels = L.oracle_labels(pairs["progress_a"], pairs["progress_b"])
    model, metrics = L.fit_reward_model(pairs["caption_a"], pairs["caption_b"], labels, epochs=2, progress=False)
    L.build_artifact(model, rollouts["caption"].tolist(), captioner=L.captioner_name(env_id),
                     metrics=metrics).save(path)


@pytest.mark.slow
def test_the_rl_zoo_configs_train_with_the_shaped_reward_and_log_its_parts(tmp_path: Path) -> None:
    pytest.importorskip("rl_zoo3")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    conf_py, conf_yaml, train = _zoo_snippets()
    _reward_model(tmp_path / "reward_model")  # the snippets' reward_model="reward_model", relative to the cwd
    (tmp_path / "llm_reward_zoo.py").write_text(conf_py)
    (tmp_path / "llm_reward_zoo.yml").write_text(conf_yaml)
    for conf in ("llm_reward_zoo.py", "llm_reward_zoo.yml"):
        words = [w if w != "llm_reward_zoo.py" else conf for w in train]
        words = [sys.executable if w == "python" else w for w in words] + ["-n", "2048", "--eval-freq", "-1"]
        done = subprocess.run(words, cwd=tmp_path, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"{conf}:\n{done.stderr[-3000:]}"
    runs = sorted((tmp_path / "tb").rglob("events.out.tfevents*"))
    assert len(runs) == 2
    for events in runs:
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        tags = set(accumulator.Tags()["scalars"])
        assert {"shaped/ep_extrinsic_mean", "shaped/ep_intrinsic_mean", "shaped/ep_shaped_mean"} <= tags, tags


def test_the_docs_home_installs_what_the_readme_installs():
    def install_lines(page: str) -> list[str]:
        return [line for _, code, _ in blocks("bash", [page]) for line in code.splitlines()
                if line.startswith("pip install torch")]

    assert install_lines("docs/index.md")[0] == install_lines("README.md")[0]
