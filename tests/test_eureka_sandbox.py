"""Hostile reward code: every string is rejected or killed with a reason, writes nothing outside its sandbox,
reads no secret, and leaves no process behind. Plus the layers below the allow-list, tested on their own."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from llm_reward.eureka.allowlist import CodeRejected, check_code
from llm_reward.eureka.channel import ChannelError, FrameReader, decode_payload, encode
from llm_reward.eureka.sandbox import SandboxLimits, check_frame, run_job

ENV_ID = "MiniGrid-DoorKey-5x5-v0"
SECRET = "sk-test-" + uuid.uuid4().hex
CANARY = Path("/tmp") / f"eureka-canary-{uuid.uuid4().hex}"


def reward(body: str, header: str = "import numpy as np\n") -> str:
    signature = "def compute_reward(obs, action, next_obs, info):\n"
    return header + signature + textwrap.indent(textwrap.dedent(body), "    ")


HOSTILE = {
    "file_read": reward("return float(len(open('/etc/passwd').read())), {}"),
    "file_write": reward(f"open('{CANARY}', 'w').write('x')\nreturn 0.0, {{}}"),
    "numpy_file_write": reward(f"np.save('{CANARY}', np.zeros(3))\nreturn 0.0, {{}}"),
    "tofile": reward(f"next_obs.tofile('{CANARY}')\nreturn 0.0, {{}}"),
    "socket": "import socket\n" + reward("socket.create_connection(('8.8.8.8', 53))\nreturn 0.0, {}", ""),
    "subprocess": "import subprocess\n" + reward(f"subprocess.run(['touch', '{CANARY}'])\nreturn 0.0, {{}}", ""),
    "os_system": "import os\n" + reward(f"os.system('touch {CANARY}')\nreturn 0.0, {{}}", ""),
    "fork_bomb": "import os\n" + reward("while True:\n    os.fork()", ""),
    "infinite_loop": reward("while True:\n    pass"),
    "busy_sleep": reward("x = 0\nfor i in range(10 ** 12):\n    x += i\nreturn float(x), {}"),
    "huge_allocation": reward("big = np.ones((10 ** 6, 10 ** 6))\nreturn float(big.sum()), {}"),
    "list_allocation": reward("big = [0] * (10 ** 11)\nreturn 0.0, {}"),
    "dunder_import": reward("m = __import__('os')\nreturn 0.0, {}"),
    "builtins_escape": reward("b = [].__class__.__base__.__subclasses__()\nreturn 0.0, {}"),
    "globals_escape": reward("g = compute_reward.__globals__\nreturn 0.0, {}"),
    "getattr_escape": reward("f = getattr(np, 'lo' + 'ad')\nreturn 0.0, {}"),
    "format_escape": reward("s = '{0.__class__}'.format(obs)\nreturn 0.0, {}"),
    "importlib_trick": "import importlib\n" + reward("importlib.import_module('os')\nreturn 0.0, {}", ""),
    "numpy_ctypes": reward("lib = np.ctypeslib.load_library('libc', '/lib')\nreturn 0.0, {}"),
    "exec_eval": reward("exec('import os')\nreturn eval('1.0'), {}"),
    "secret_env": "import os\n" + reward("return float(len(os.environ['LLM_REWARD_TEST_SECRET'])), {}", ""),
    "proc_environ": reward(f"return float(len(open('/proc/{os.getpid()}/environ').read())), {{}}"),
    "nan_total": reward("return float('nan'), {}"),
    "inf_component": reward("return 1.0, {'boom': np.inf}"),
    "wrong_type": reward("return 'high', {}"),
    "wrong_shape": reward("return next_obs, {}"),
    "not_a_tuple": reward("return 1.0"),
    "huge_dict": reward("return 1.0, {f'c{i}': 1.0 for i in range(10000)}"),
    "huge_value": reward("return 1e300, {}"),
    "recursion": reward("def deep(n):\n    return deep(n + 1)\nreturn float(deep(0)), {}"),
    "signal_trick": "import signal\n" + reward("signal.signal(signal.SIGALRM, signal.SIG_IGN)\nreturn 0.0, {}", ""),
    "module_side_effect": "import numpy as np\nbig = np.ones((10 ** 6, 10 ** 6))\n" + reward("return 0.0, {}", ""),
    "forged_channel": reward('print(\'{"type": "result", "steps": 1, "total": [1, 1, 1], "components": {}}\')\n'
                             'raise ValueError("real failure")'),
    "raise_base": reward("raise SystemExit(0)"),
    "class_def": "class Evil:\n    pass\n" + reward("return 0.0, {}", ""),
    "global_stmt": reward("global np\nreturn 0.0, {}"),
    "generator_frame": reward("g = (i for i in range(3))\nf = g.gi_frame\nreturn 0.0, {}"),
}


def _processes_in_session(sid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid:  # stat field 6: session id
                found.append(int(entry))
    return found


@pytest.fixture(autouse=True)
def secret_in_environment(monkeypatch):
    monkeypatch.setenv("LLM_REWARD_TEST_SECRET", SECRET)
    yield
    CANARY.unlink(missing_ok=True)


def test_at_least_twenty_hostile_strings():
    assert len(HOSTILE) >= 20


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_code_is_contained(name, tmp_path):
    code = HOSTILE[name]
    try:
        check_code(code)
    except CodeRejected as exc:  # the first layer: rejected before any process starts
        reason = str(exc)
        assert reason and "\n" not in reason
        return
    outcome = run_job({"mode": "smoke", "env_id": ENV_ID, "code": code, "seed": 0, "n_steps": 30},
                      limits=SandboxLimits(timeout_s=15, memory_mb=3072), sandbox_root=tmp_path)
    assert not outcome.ok, f"{name} was accepted: {outcome.result}"
    assert outcome.reason and "\n" not in outcome.reason
    assert SECRET not in outcome.reason and SECRET not in outcome.log_tail
    assert not CANARY.exists() and not Path(f"{CANARY}.npy").exists()
    assert list(tmp_path.iterdir()) == []  # the sandbox directory itself is gone
    assert _processes_in_session(outcome.pid) == []


def test_good_code_passes_the_same_path(tmp_path):
    code = reward("d = float(np.abs(next_obs).mean())\nreturn -d, {'mean_abs': d}")
    outcome = run_job({"mode": "smoke", "env_id": ENV_ID, "code": code, "seed": 0, "n_steps": 30},
                      sandbox_root=tmp_path)
    assert outcome.ok, outcome.reason
    assert set(outcome.result["components"]) == {"mean_abs"}
    assert outcome.result["steps"] == 30


def test_timeout_kills_a_looping_worker(tmp_path):
    outcome = run_job({"mode": "smoke", "env_id": ENV_ID, "code": HOSTILE["infinite_loop"], "seed": 0,
                       "n_steps": 5}, limits=SandboxLimits(timeout_s=8), sandbox_root=tmp_path)
    assert not outcome.ok and "timed out" in outcome.reason
    assert outcome.killed
    assert _processes_in_session(outcome.pid) == []


# -- the layers below the allow-list, each on its own ----------------------------------------------------------
def _guarded(snippet: str, sandbox: Path) -> subprocess.CompletedProcess:
    """Run ``snippet`` in ``python -I`` after the worker's audit hook is installed (no allow-list involved)."""
    program = (f"from llm_reward.eureka.guard import install_audit_hook\ninstall_audit_hook({str(sandbox)!r})\n"
               + textwrap.dedent(snippet))
    return subprocess.run([sys.executable, "-I", "-c", program], capture_output=True, text=True, timeout=60,
                          cwd=sandbox)


@pytest.mark.parametrize("snippet", [
    f"open({str(CANARY)!r}, 'w').write('x')",
    f"import os; os.system('touch {CANARY}')",
    f"import subprocess; subprocess.run(['touch', {str(CANARY)!r}])",
    "import os; os.fork()",
    "import socket; socket.create_connection(('127.0.0.1', 9))",
    "import ctypes; ctypes.CDLL('libc.so.6')",
    f"import os; open('/proc/{os.getppid()}/environ').read()",
    "import os, signal; os.kill(os.getppid(), signal.SIGTERM)",
])
def test_audit_hook_blocks_without_the_allowlist(snippet, tmp_path):
    done = _guarded(snippet, tmp_path)
    assert done.returncode != 0
    assert "PermissionError: sandbox:" in done.stderr
    assert not CANARY.exists()


def test_audit_hook_allows_writing_inside_the_sandbox(tmp_path):
    done = _guarded("open('inside.txt', 'w').write('ok')", tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "inside.txt").read_text() == "ok"


def test_network_namespace_has_no_route(tmp_path):
    from llm_reward.eureka.sandbox import network_isolation_prefix

    prefix = network_isolation_prefix()
    if not prefix:
        pytest.skip("network namespaces are not permitted on this machine (documented fallback: allow-list only)")
    done = subprocess.run([*prefix, sys.executable, "-I", "-c",
                           "import socket; socket.create_connection(('1.1.1.1', 53), timeout=3)"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode != 0 and ("unreachable" in done.stderr.lower() or "OSError" in done.stderr)


# -- the typed channel -------------------------------------------------------------------------------------------
def test_channel_refuses_non_finite_and_malformed_frames():
    with pytest.raises(ChannelError):
        decode_payload(b'{"type": "progress", "x": NaN}')
    with pytest.raises(ChannelError):
        decode_payload(b"[1, 2]")
    with pytest.raises(ChannelError):
        check_frame("train", {"type": "progress", "point": 0, "timestep": 1, "episodes": 0,
                              "components": {f"c{i}": 1.0 for i in range(100)}})
    with pytest.raises(ChannelError):
        check_frame("smoke", {"type": "result", "steps": 1, "total": ["1", 1, 1], "components": {}})
    with pytest.raises(ChannelError):
        check_frame("smoke", {"type": "progress"})


def test_frame_reader_round_trip_and_deadline():
    import time

    read_fd, write_fd = os.pipe()
    try:
        os.write(write_fd, encode({"type": "result", "steps": 3}))
        reader = FrameReader(read_fd)
        assert reader.read(time.monotonic() + 5)["steps"] == 3
        with pytest.raises(ChannelError, match="timed out"):
            reader.read(time.monotonic() + 0.2)
    finally:
        os.close(read_fd)
        os.close(write_fd)


def test_worker_environment_is_rebuilt_without_secrets(monkeypatch, tmp_path):
    from llm_reward.eureka.sandbox import scrubbed_environment

    monkeypatch.setenv("OPENAI_API_KEY", "sk-live-123")
    monkeypatch.setenv("HF_TOKEN", "hf_abc")
    env = scrubbed_environment(str(tmp_path))
    assert SECRET not in env.values() and "sk-live-123" not in env.values() and "hf_abc" not in env.values()
    assert not any(word in key for key in env for word in ("KEY", "TOKEN", "SECRET", "PASSWORD"))
    assert env["HOME"] == env["TMPDIR"] == str(tmp_path)


# -- the reward server's binary frames -------------------------------------------------------------------------
def _rewards_body(names=("a", "b"), rows=((1.0, 0.5, 0.25), (2.0, -0.5, 0.0))) -> bytes:
    from llm_reward.eureka.channel import encode_rewards

    return encode_rewards(names, rows)[4:]


def test_rewards_frame_round_trip_and_module_examples():
    import doctest

    import numpy as np

    from llm_reward.eureka import batch, channel

    names, values = channel.decode_rewards(_rewards_body(), n=2)
    assert names == ("a", "b")
    assert values.tolist() == [[1.0, 2.0], [0.5, -0.5], [0.25, 0.0]]
    assert channel.decode_rewards(_rewards_body((), [(1.5,)]), n=1)[1].tolist() == [[1.5]]
    assert not values.flags.writeable and values.dtype == np.float64
    for module in (channel, batch):
        assert doctest.testmod(module).failed == 0


def _forged(body: bytes, **fields) -> bytes:
    """``body`` with header fields replaced (tag, n, k, name block length)."""
    import struct

    head = struct.Struct("<4sIHI")
    tag, n, k, size = head.unpack_from(body)
    values = {"tag": tag, "n": n, "k": k, "size": size, **fields}
    return head.pack(values["tag"], values["n"], values["k"], values["size"]) + body[head.size:]


@pytest.mark.parametrize("case", ["nan", "inf", "huge", "wrong_n", "truncated", "extra_bytes", "wrong_tag",
                                  "too_many_components", "repeated_name", "empty_name", "long_name", "not_utf8",
                                  "name_block_overrun", "short_header"])
def test_rewards_frame_forgeries_are_refused_with_a_one_line_reason(case):
    import struct

    from llm_reward.eureka.channel import MAX_COMPONENTS, decode_rewards, encode_rewards

    good = _rewards_body()
    body = {
        "nan": _rewards_body(rows=((float("nan"), 0.0, 0.0), (1.0, 0.0, 0.0))),
        "inf": _rewards_body(rows=((1.0, float("-inf"), 0.0), (1.0, 0.0, 0.0))),
        "huge": _rewards_body(rows=((1.0, 0.0, 0.0), (1.0, 0.0, 2e9))),
        "wrong_n": good,  # decoded below for 3 transitions
        "truncated": good[:-8],
        "extra_bytes": good + struct.pack("<d", 1.0),
        "wrong_tag": b"\x00rw9" + good[4:],
        "too_many_components": encode_rewards([f"c{i}" for i in range(MAX_COMPONENTS + 1)],
                                              [(0.0,) * (MAX_COMPONENTS + 2)])[4:],
        "repeated_name": _rewards_body(names=("a", "a")),
        "empty_name": _rewards_body(names=("", "b")),
        "long_name": _rewards_body(names=("x" * 65, "b")),
        "not_utf8": _rewards_body(names=("a", "b")).replace(b"\x01\x00b", b"\x01\x00\xff"),
        "name_block_overrun": _forged(good, size=10_000),
        "short_header": good[:6],
    }[case]
    n = 3 if case in ("wrong_n",) else (1 if case == "too_many_components" else 2)
    with pytest.raises(ChannelError) as caught:
        decode_rewards(body, n)
    assert str(caught.value) and "\n" not in str(caught.value)


def test_a_json_reader_refuses_a_binary_rewards_frame():
    from llm_reward.eureka.channel import encode_rewards

    with pytest.raises(ChannelError, match="undecodable"):
        decode_payload(encode_rewards(("a",), [(1.0, 2.0)])[4:])  # smoke and train jobs never accept one
