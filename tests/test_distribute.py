"""Training picks its tf.distribute strategy: two local workers train together with TF_CONFIG."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import PROJECT, make_dataset
from maskdet import runs

pytestmark = pytest.mark.slow


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_single_process_uses_the_default_strategy():
    import tensorflow as tf

    from maskdet import distribute

    assert distribute.choose_strategy() is tf.distribute.get_strategy()
    assert distribute.is_chief()


@pytest.mark.timeout(400)
def test_two_local_workers_train_one_model_with_multiworker_mirrored_strategy(tmp_path):
    data_dir = make_dataset(tmp_path / "faces", per_class=32)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in free_ports(2)]}
    procs = []
    for index in range(2):
        env = {
            **os.environ,
            "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
            "CUDA_VISIBLE_DEVICES": "",
        }
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "maskdet",
                    "train",
                    "--data",
                    str(data_dir),
                    "--epochs",
                    "1",
                    "--batch-size",
                    "16",
                    "--runs-dir",
                    str(tmp_path / f"runs{index}"),
                ],
                cwd=PROJECT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                text=True,
            )
        )
    try:
        outs = [p.communicate(timeout=300) for p in procs]  # bounded: the test stops by itself
    finally:
        for p in procs:
            p.kill()
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-2000:]
    chief_run = Path(outs[0][0].strip().splitlines()[0])
    st = runs.status(chief_run)
    assert st["state"] == "done" and st["replicas"] == 2, st
    assert (chief_run / "model.keras").exists()
    assert not (Path(outs[1][0].strip().splitlines()[0]) / "model.keras").exists()  # only the chief writes
