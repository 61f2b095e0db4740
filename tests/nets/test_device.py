import platform
import subprocess
import sys

import pytest

TRAINING_STEPS = """
import resource, sys, torch, nets
if sys.argv[1] == "keep":
    assert nets.keep_freed_memory()
torch.manual_seed(0)
net = nets.ActorCritic((4, 84, 84), 6)
optimizer = nets.make_optimizer("adam", net.parameters(), 1e-4)
obs = torch.randint(0, 256, (128, 4, 84, 84), dtype=torch.uint8)
def step():
    logits, values = net(obs)
    (logits.logsumexp(-1) + values).mean().backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults(mode: str) -> int:
    """Minor page faults of 10 Nature CNN training steps (batch 128), after one warm-up step."""
    run = subprocess.run([sys.executable, "-c", TRAINING_STEPS, mode], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    return int(run.stdout.split()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="a glibc malloc setting")
def test_keep_freed_memory_lets_training_steps_reuse_their_pages():
    """By default the steps' large tensors keep getting fresh pages that fault in (36k-52k faults in five
    trials here); with the setting they reuse kept ones (4k-6k). Subprocesses, because the setting holds
    for the whole process."""
    default, kept = page_faults("default"), page_faults("keep")
    assert kept * 3 < default
