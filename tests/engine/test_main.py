"""The command line: `python -m engine info` and `python -m engine trace`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.__main__ import main
from engine.checkpoints import random_model, save_checkpoint
from engine.config import PRESETS
from engine.names import canonical_names
from engine.tokenizer import cl100k_truncated

REPO = Path(__file__).resolve().parents[2]


def test_trace_command_writes_token_ids_and_every_canonical_activation(tmp_path: Path) -> None:
    """The issue's acceptance command, run as a user would run it."""
    out = tmp_path / "t.npz"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "engine", "trace", "--model", "random"]
    result = subprocess.run(
        [*cmd, "--text", "Hello, world", "--out", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    with np.load(out) as data:
        n_layer = PRESETS["bundled"].n_layer
        assert list(data.keys()) == ["token_ids", *canonical_names(n_layer)]
        ids = cl100k_truncated(8192).encode("Hello, world")
        assert data["token_ids"].tolist() == ids
        assert data["logits"].shape == (len(ids), 8193)
        pattern = data[f"blocks.{n_layer - 1}.attn.hook_pattern"]
        np.testing.assert_allclose(pattern.sum(-1), 1.0, atol=1e-6)
    assert f"for {len(ids)} tokens" in result.stdout


def test_info_prints_the_configuration_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "--model", "random"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["name"] == "random"
    assert info["config"] == PRESETS["bundled"].to_dict()
    assert info["n_params"] == PRESETS["bundled"].n_params()
    assert info["tokenizer"] == "cl100k_base[:8192]"


def test_info_reads_a_checkpoint_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = save_checkpoint(random_model(PRESETS["tiny"]), tmp_path / "tiny", n_ranks=4096)
    assert main(["info", "--model", str(directory)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["config"] == PRESETS["tiny"].to_dict()
    assert info["source"] == str(directory)


def test_trace_takes_comma_separated_ids(tmp_path: Path) -> None:
    out = tmp_path / "ids.npz"
    assert main(["trace", "--model", "random", "--ids", "10, 20,30", "--out", str(out)]) == 0
    with np.load(out) as data:
        assert data["token_ids"].tolist() == [10, 20, 30]
        assert data["hook_embed"].shape == (3, PRESETS["bundled"].d_model)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--ids", "1,x"], 2, "--ids takes comma-separated integers"),
        (["--ids", "1,99999"], 1, "token id 99999 is outside the vocabulary"),
        (["--text", ""], 1, "the text is empty"),
        (["--model", "/no/such/model", "--text", "hi"], 1, "/no/such/model is not a directory"),
    ],
)
def test_trace_reports_bad_input_as_a_message_and_exit_code(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    code: int,
    message: str,
) -> None:
    argv = ["trace", *(args if "--model" in args else ["--model", "random", *args])]
    assert main([*argv, "--out", str(tmp_path / "x.npz")]) == code
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert not (tmp_path / "x.npz").exists()
