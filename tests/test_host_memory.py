"""sed.training.host_memory: with reuse on, training steps stop faulting in fresh memory.

Counted with the process's minor page faults (getrusage) per training step, not
timed; each case runs in a fresh interpreter because the setting is
process-wide.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc mallopt only"
)

PROBE = textwrap.dedent(
    """
    import json, resource, sys
    import torch
    from sed.training import host_memory
    from sed.nn.model import CRNN, CRNNConfig

    torch.manual_seed(0)
    torch.set_num_threads(1)
    if sys.argv[1] == "reuse":
        assert host_memory.reuse_freed_memory()[0]
    # batch 8 of [628, 128] with 16 channels: the first block's activations are 41 MB each,
    # above glibc's 32 MiB mmap ceiling, like the full-size model's 123 MB ones
    model = CRNN(CRNNConfig(cnn_filters=(16,) * 7, rnn_hidden=16)).train()
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    x = torch.randn(8, 628, 128)
    y = (torch.rand(8, 157, 10) < 0.1).float()

    def faults_of_one_step():
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        strong, _ = model(x)
        loss = torch.nn.functional.binary_cross_entropy(strong, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    out = {"steps": [faults_of_one_step() for _ in range(6)]}
    if sys.argv[1] == "reuse":
        host_memory.restore_default_malloc()
        out["restored"] = [faults_of_one_step() for _ in range(2)]
    print(json.dumps(out))
    """
)


def probe(mode: str) -> dict:
    res = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # a whole training run or several processes
def test_reuse_removes_the_page_faults_of_training_steps():
    default = probe("default")["steps"]
    reuse = probe("reuse")
    # default allocator: every step maps its large activations afresh (measured ~140-200k
    # faults of 4 KiB per step here); with reuse the heap grows over the first steps,
    # then the steps run in memory already mapped (measured 0-10k)
    assert min(default[3:]) > 50_000, default
    assert sum(reuse["steps"][3:]) < 0.1 * sum(default[3:]), (reuse, default)
    # back to glibc's defaults, the faults come back
    assert reuse["restored"][0] > 0.5 * min(default[3:]), (reuse, default)


@pytest.mark.slow  # a whole training run or several processes
def test_trainer_turns_it_on_for_the_cpu_only_when_asked(tiny_data_root, session_cache):
    code = textwrap.dedent(
        f"""
        import dataclasses
        from sed.training import host_memory
        from sed.config import TrainConfig
        from sed.training.trainer import Trainer
        cfg = dataclasses.replace(TrainConfig(), embedded_size="tiny", cnn_filters=(4, 8, 8, 8, 8, 8, 8),
                                  rnn_hidden=8, batch_size=8, device="cpu", reuse_host_memory=%s)
        Trainer(cfg, cache_dir={str(session_cache)!r}, progress=False)
        print(host_memory.is_active())
        """
    )
    for flag, expected in (("False", "False"), ("True", "True")):
        res = subprocess.run([sys.executable, "-c", code % flag], capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        assert res.stdout.strip().splitlines()[-1] == expected
