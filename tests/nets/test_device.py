import platform
import subprocess
import sys
from collections.abc import Iterator

import pytest
import torch

import nets

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
    trials here, once only 9.9k under a loaded test run: glibc then happened to reuse its heap); with the
    setting they reuse kept ones (4k-6k). Subprocesses, because the setting holds for the whole process;
    the default side is sampled twice for that reason."""
    default = max(page_faults("default"), page_faults("default"))
    kept = page_faults("keep")
    assert kept * 2 < default


CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def fake_gpu(monkeypatch: pytest.MonkeyPatch, major: int) -> None:
    """Stand in a CUDA GPU of compute capability `major`.0, the one thing the precision rules ask of it."""
    monkeypatch.setattr(nets.device, "cuda_capability", lambda device: (major, 0))


def native_bf16_cpu(monkeypatch: pytest.MonkeyPatch, native: bool) -> None:
    real = nets.device.bf16_supported
    monkeypatch.setattr(nets.device, "bf16_supported", lambda d: native if d.type == "cpu" else real(d))


@pytest.fixture
def tf32_flags() -> Iterator[None]:
    """Start with torch's process-wide TF32 switches off and put them back as they were afterwards."""
    before = tf32_switches()
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def tf32_switches() -> tuple[bool, bool]:
    return torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32


@pytest.mark.parametrize(("major", "auto"), [(7, "fp32"), (8, "tf32"), (9, "tf32")])
def test_auto_on_cuda_is_tf32_from_ampere_on_and_never_bf16(monkeypatch, major, auto):
    """Volta/Turing (7.x) have neither TF32 nor native bf16; Ampere (8.x) and Hopper (9.x, the H200) have
    both, yet "auto" picks TF32 there: bf16 autocast was measured slower than fp32 on the H200."""
    fake_gpu(monkeypatch, major)
    assert nets.choose_precision(CUDA, "auto") == auto
    assert nets.tf32_supported(CUDA) == nets.bf16_supported(CUDA) == (major >= 8)


@pytest.mark.parametrize(("native", "auto"), [(True, "bf16"), (False, "fp32")])
def test_auto_on_a_cpu_is_bf16_where_it_is_native_else_fp32(monkeypatch, native, auto):
    native_bf16_cpu(monkeypatch, native)
    assert nets.choose_precision(CPU, "auto") == auto
    assert not nets.tf32_supported(CPU)


def test_explicit_choices_are_honoured_and_tf32_without_tf32_runs_as_fp32(monkeypatch, capsys):
    native_bf16_cpu(monkeypatch, True)
    assert [nets.choose_precision(CPU, p) for p in ("bf16", "fp32", "tf32")] == ["bf16", "fp32", "fp32"]
    fake_gpu(monkeypatch, 8)
    assert [nets.choose_precision(CUDA, p) for p in ("bf16", "fp32", "tf32")] == ["bf16", "fp32", "tf32"]
    fake_gpu(monkeypatch, 7)
    assert [nets.choose_precision(CUDA, p) for p in ("fp32", "tf32")] == ["fp32", "fp32"]
    assert capsys.readouterr().err == ""  # nothing asked for was emulated


def test_bf16_where_it_is_not_native_is_honoured_with_one_warning_per_device_type(monkeypatch, capsys):
    monkeypatch.setattr(nets.device, "_warned", set())
    native_bf16_cpu(monkeypatch, False)
    fake_gpu(monkeypatch, 7)
    assert [nets.choose_precision(CPU, "bf16") for _ in range(3)] == ["bf16"] * 3
    assert nets.choose_precision(CUDA, "bf16") == "bf16"
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    assert all(line.startswith("warning: bf16 is not native") and "emulated" in line for line in lines)
    assert "this cpu" in lines[0] and "this cuda" in lines[1]


def test_an_unknown_precision_is_refused_naming_the_valid_ones():
    with pytest.raises(ValueError, match="precision 'fp16': choose one of auto, bf16, fp32, tf32"):
        nets.choose_precision(CPU, "fp16")


def test_a_tf32_device_net_turns_the_tf32_switches_on_and_others_turn_them_off(monkeypatch, tf32_flags):
    """On CUDA the switches follow the precision of the DeviceNet built last (process-wide flags); on a
    CPU, where they mean nothing, a DeviceNet leaves them alone."""
    fake_gpu(monkeypatch, 8)
    net = torch.nn.Linear(4, 2)
    tf32 = nets.DeviceNet(net, CUDA, "auto")
    assert tf32.precision == "tf32" and not tf32.bf16 and tf32.inference.inference_net is net  # fp32 weights
    assert tf32_switches() == (True, True)
    assert nets.DeviceNet(net, CUDA, "fp32").precision == "fp32"
    assert tf32_switches() == (False, False)
    nets.DeviceNet(net, CUDA, "tf32")
    bf16 = nets.DeviceNet(net, CUDA, "bf16")
    assert bf16.bf16 and bf16.inference.inference_net is not net  # acting reads a bf16 copy
    assert tf32_switches() == (False, False)
    nets.DeviceNet(net, CUDA, "tf32")
    assert nets.DeviceNet(net, CPU, "tf32").precision == "fp32"  # no TF32 on a CPU
    assert tf32_switches() == (True, True)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_acting_and_learning_run_at_the_same_precision(precision):
    """`infer` (acting, targets) and the training forward give the same outputs: both in float32, or both
    from bf16 weights under autocast, which differ from float32 by bf16's rounding."""
    torch.manual_seed(0)
    module = nets.ActorCritic((4, 84, 84), 6, (64,))
    obs = torch.randint(0, 256, (8, 4, 84, 84), dtype=torch.uint8)
    net = nets.DeviceNet(module, CPU, precision)
    with torch.no_grad():
        learned, plain = net(obs)[0], module(obs)[0]
    acted = net.infer(obs.numpy())[0]
    assert acted.dtype == learned.dtype == torch.float32
    torch.testing.assert_close(acted, learned, atol=1e-6 if precision == "fp32" else 2e-3, rtol=0)
    assert torch.equal(learned, plain) == (precision == "fp32")
