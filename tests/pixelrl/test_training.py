"""The run layer's Trainer: a run's precision is chosen once for its device and recorded, and run
directories from before `precision` (configs with "bf16": true/false) still resume and evaluate."""

import dataclasses
import json
from pathlib import Path

import pytest

import agents
import envs
import nets
from pixelrl import cli, evaluation
from pixelrl.checkpoint import save_checkpoint
from pixelrl.training import RunConfig, Session, Trainer, train_to_budget

PPO = agents.get_agent("ppo")


def restored(trainer: Trainer) -> Session:
    """The built (or resumed) run, without training it."""
    session = trainer.restore()
    session.env.close()
    session.logger.close()
    return session


@pytest.mark.parametrize(("native", "recorded"), [(True, "bf16"), (False, "fp32")])
def test_a_run_records_the_precision_chosen_for_its_device(tmp_path, monkeypatch, capsys, native, recorded):
    monkeypatch.setattr(nets.device, "bf16_supported", lambda device: native)
    run = RunConfig(env="CartPole-v1", run_dir=tmp_path / "run", wandb="off", device="cpu", progress=False)
    session = restored(Trainer(PPO, run, dataclasses.replace(PPO.presets["classic"], precision="auto")))
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["agent_config"]["precision"] == recorded  # what ran, not "auto"
    assert session.agent.actor_critic.precision == recorded
    assert f"device cpu, precision {recorded}," in capsys.readouterr().err  # the run's start line


@pytest.mark.parametrize(("bf16", "resumed"), [(True, "bf16"), (False, "fp32")])
def test_an_old_run_with_bf16_in_its_config_resumes_and_evaluates(tmp_path, monkeypatch, bf16, resumed):
    """bf16 true meant bf16 where native: it resumes as "auto" (bf16 on this, native, CPU); false as fp32."""
    monkeypatch.setattr(nets.device, "bf16_supported", lambda device: True)
    run_dir = tmp_path / "old"
    old_run = RunConfig(env="CartPole-v1", run_dir=run_dir, wandb="off", device="cpu", progress=False)
    env = envs.make("CartPole-v1", 1, backend="sync")
    agent = PPO.make_agent(PPO.presets["classic"], env, "cpu", 0)
    env.close()
    old_cfg = {k: v for k, v in dataclasses.asdict(PPO.presets["classic"]).items() if k != "precision"}
    old_cfg["bf16"] = bf16
    run_config = {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(old_run).items()}
    meta = {"agent": "ppo", "game": "CartPole-v1", "step": 64, "frames": 64, "agent_config": old_cfg,
            "env_options": {}, "run_config": run_config}  # fmt: skip
    save_checkpoint(run_dir / "checkpoints" / "latest", agent.state_dict(), meta)

    spec, run, cfg = cli.parse_train(["ppo", "--resume", str(run_dir)], None)
    assert cfg.precision == ("auto" if bf16 else "fp32")
    session = restored(Trainer(spec, run, cfg))
    assert session.start_step == 64 and session.agent.actor_critic.precision == resumed
    config = json.loads((run_dir / "config.json").read_text())
    assert config["agent_config"]["precision"] == resumed and "bf16" not in config["agent_config"]
    loaded, _ = evaluation.load_agent(run_dir, "latest", "cpu")  # from the old checkpoint's own config
    assert loaded.actor_critic.precision == resumed
    _, _, other = cli.parse_train(["ppo", "--resume", str(run_dir), "--precision", "tf32"], None)
    assert other.precision == "tf32"  # a resume may choose again, e.g. on another device


def test_continuing_a_run_to_its_budget_refuses_changed_settings_before_training(tmp_path):
    """What benchmark.py learning and sweeps call: a preset edited since the run started must not train the
    rest of the run with other settings; its budget and the evaluation rate may change."""
    cfg = dataclasses.replace(PPO.presets["classic"], frames=512)
    run = RunConfig(env="CartPole-v1", run_dir=tmp_path / "run", wandb="off", eval_episodes=1, progress=False)
    assert train_to_budget(PPO, run, cfg)
    metrics = (tmp_path / "run" / "metrics.jsonl").read_text()
    refused = r"run was trained with lr=0\.001, and this call asks for lr=0\.01; a resume may change only "
    with pytest.raises(ValueError, match=refused + r".*frames.*: put the settings back"):
        train_to_budget(PPO, run, dataclasses.replace(cfg, frames=1024, lr=0.01))
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == metrics  # nothing trained
    assert train_to_budget(PPO, run, dataclasses.replace(cfg, frames=1024))  # a longer budget continues it
