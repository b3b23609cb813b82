import numpy as np
from point_env import PointEnv
from worldsample_control.core.episode import Source
from worldsample_control.core.rollout import run_episode
from worldsample_learner.core.config import AgentConfig, LearnConfig, PPLConfig
from worldsample_learner.core.policy import load_policy
from worldsample_learner.core.train import train_in_process


def _cfg(mode: str = "rl-only", steps: int = 2000, **agent) -> LearnConfig:
    a = dict(obs_mode="state", hidden_dim=64, num_critics=4, batch_size=64, utd_ratio=1, discount=0.9)
    a.update(agent)
    return LearnConfig(agent=AgentConfig(**a), ppl=PPLConfig(mode=mode), env_steps=steps, warmup_steps=200,
                       eval_every=500, eval_episodes=10, log_every=250, checkpoint_every=1000)


def test_sac_solves_point_task_from_state(tmp_path):
    env = PointEnv()
    r = train_in_process(env, _cfg(), [], None, tmp_path, progress=False)
    # random actions almost never reach the goal; a learned policy does
    assert r["best_success_rate"] >= 0.8, r["success_curve"]
    assert (tmp_path / "plots.png").stat().st_size > 0
    assert (tmp_path / "metrics.csv").read_text().count("\n") == 1 + 2000 // 250
    ckpts = sorted((tmp_path / "checkpoints").glob("policy-*.pt"))
    assert [p.name for p in ckpts] == ["policy-000001.pt", "policy-000002.pt", "policy-000003.pt"]
    # the checkpoint alone reproduces the evaluated success
    pol = load_policy(ckpts[-1])
    eps = [run_episode(env, pol, seed=1_000_000 + i) for i in range(10)]
    assert np.mean([e.success for e in eps]) == r["final_success_rate"]


def test_random_policy_baseline_fails_point_task():
    env = PointEnv()
    rng = np.random.default_rng(0)
    eps = [run_episode(env, lambda o: rng.uniform(-1, 1, 4).astype(np.float32), seed=1_000_000 + i) for i in range(10)]
    assert np.mean([e.success for e in eps]) <= 0.2


def test_pixels_mode_trains_and_uses_demos(tmp_path):
    env = PointEnv(render=True, image_size=16)

    def expert(o):
        d = o.state - o.proprio[:2]
        return np.concatenate([np.clip(d / 0.15, -1, 1), [0.0, 0.0]]).astype(np.float32)

    demos = [run_episode(env, expert, seed=i, source=Source.DEMO) for i in range(5)]
    assert all(d.success for d in demos)
    cfg = _cfg(steps=300, obs_mode="pixels", cameras=("front", "wrist"), feature_dim=16, encoder_channels=8,
               augment_pad=1)
    cfg.warmup_steps, cfg.eval_every, cfg.eval_episodes, cfg.log_every = 50, 300, 2, 100
    r = train_in_process(env, cfg, demos, None, tmp_path, progress=False)
    assert r["updates"] == 250
    assert r["replay"]["demo"]["size"] == sum(d.length for d in demos)
    pol = load_policy(r["checkpoint"])
    assert pol.obs_mode == "pixels" and pol.spec.cameras == ("front", "wrist")
    a = pol.act(env.reset(seed=3))
    assert a.shape == (4,) and np.all(np.abs(a) <= 1)
