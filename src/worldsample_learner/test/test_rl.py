import numpy as np
from point_env import PointEnv
from worldsample_common.core.episode import Source
from worldsample_control.core.rollout import run_episode
from worldsample_learner.core.config import AgentConfig, LearnConfig, PPLConfig
from worldsample_learner.core.policy import load_policy
from worldsample_learner.drivers.learn import train_in_process


def _cfg(mode: str = "rl-only", steps: int = 2000, **agent) -> LearnConfig:
    a = dict(obs_mode="state", hidden_dim=64, num_critics=4, batch_size=64, utd_ratio=1, discount=0.9)
    a.update(agent)
    return LearnConfig(agent=AgentConfig(**a), ppl=PPLConfig(mode=mode), env_steps=steps, warmup_steps=200,
                       eval_every=500, eval_episodes=10, log_every=250, checkpoint_every_env_steps=1000)


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


def test_sac_with_bfloat16_hidden_layers_solves_point_task(tmp_path):
    r = train_in_process(PointEnv(), _cfg(hidden_dtype="bfloat16"), [], None, tmp_path, progress=False)
    assert r["best_success_rate"] >= 0.8, r["success_curve"]
    pol = load_policy(r["checkpoint"])
    assert pol.cfg.hidden_dtype == "bfloat16" and pol.actor.dtype is not None  # a deployed policy computes alike


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
    cfg = _cfg(steps=300, obs_mode="pixels", pixel_encoder="conv", cameras=("front", "wrist"), feature_dim=16,
               encoder_channels=8, augment_pad=1)
    cfg.warmup_steps, cfg.eval_every, cfg.eval_episodes, cfg.log_every = 50, 300, 2, 100
    r = train_in_process(env, cfg, demos, None, tmp_path, progress=False)
    assert r["updates"] == 250
    assert r["replay"]["demo"]["size"] == sum(d.length for d in demos)
    pol = load_policy(r["checkpoint"])
    assert pol.obs_mode == "pixels" and pol.spec.cameras == ("front", "wrist")
    a = pol.act(env.reset(seed=3))
    assert a.shape == (4,) and np.all(np.abs(a) <= 1)


def test_observation_standardisation_is_fitted_from_demos_and_saved(tmp_path):
    from worldsample_learner.core.learner import Learner
    from worldsample_learner.core.policy import policy_from_agent, save_policy

    env = PointEnv()
    demos = [run_episode(env, lambda o: np.zeros(4, np.float32), seed=i, source=Source.DEMO) for i in range(3)]
    learner = Learner(AgentConfig(obs_mode="state", proprio_dim=int(demos[0].proprio.shape[1]),
                                  state_dim=int(demos[0].states.shape[1]), hidden_dim=32, batch_size=16))
    for d in demos:
        learner.add_demo_episode(d)
    assert not learner.agent.normalizer_fitted
    learner.train_step()
    enc = learner.agent.encoder
    assert learner.agent.normalizer_fitted
    held = np.concatenate([np.concatenate([d.proprio[:-1], d.states[:-1]], 1) for d in demos])
    np.testing.assert_allclose(enc.vec_mean.numpy(), held.mean(0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(enc.vec_std.numpy(), np.maximum(held.std(0, ddof=1), 1e-2), rtol=1e-3, atol=1e-5)
    # the checkpoint carries it: the loaded policy acts exactly like the live one
    path = save_policy(learner.agent, tmp_path, 1)
    obs = env.reset(seed=5)
    np.testing.assert_allclose(load_policy(path).act(obs), policy_from_agent(learner.agent).act(obs), atol=1e-6)


def test_q_filtered_bc_pulls_the_policy_towards_demo_actions():
    import torch
    from worldsample_learner.core.agent import SACAgent

    rng = np.random.default_rng(0)
    n = 64
    batch = {"obs": {"proprio": rng.normal(size=(n, 3)).astype(np.float32), "images": {}},
             "next_obs": {"proprio": rng.normal(size=(n, 3)).astype(np.float32), "images": {}},
             "action": np.full((n, 4), 0.8, np.float32), "reward": np.zeros(n, np.float32),
             "terminated": np.zeros(n, bool), "source": np.full(n, 2)}

    def gap(bc_weight: float) -> float:
        agent = SACAgent(AgentConfig(obs_mode="state", proprio_dim=3, hidden_dim=32, batch_size=n,
                                     num_critics=2, bc_weight=bc_weight, seed=1))
        for _ in range(150):
            agent.update([batch])
        with torch.no_grad():
            a = agent.act(batch["obs"], deterministic=True)
        return float(np.abs(a - 0.8).mean())

    # zero reward everywhere: Q cannot tell actions apart much, so only BC moves the mean action
    assert gap(1.0) < 0.5 * gap(0.0)
