"""`SACAgent.update` (issue 23's faster update) computes the same SAC step as the previous implementation."""

import numpy as np
import pytest
import torch
from worldsample_common.core.episode import Source
from worldsample_learner.core.agent import SACAgent
from worldsample_learner.core.config import AgentConfig
from worldsample_learner.core.replay import ReplayStore, Transition


def _store(spec, n: int, rng: np.random.Generator) -> ReplayStore:
    """Random transitions in episodes of 10 steps (n-step chains that end), half of them demos."""
    store = ReplayStore("t", spec, capacity=n)
    s = spec.image_size
    for i in range(n):
        store.add_transition(Transition(
            episode_id=f"ep{i // 10}", step=i % 10, source=Source.DEMO if (i // 10) % 2 else Source.REAL,
            proprio=rng.normal(size=spec.proprio_dim).astype(np.float32),
            action=rng.uniform(-1, 1, spec.action_dim).astype(np.float32), reward=float(rng.normal()),
            next_proprio=rng.normal(size=spec.proprio_dim).astype(np.float32), terminated=i % 10 == 9,
            images={c: rng.integers(0, 256, (s, s, 3), dtype=np.uint8) for c in spec.cameras},
            next_images={c: rng.integers(0, 256, (s, s, 3), dtype=np.uint8) for c in spec.cameras},
            state=rng.normal(size=spec.state_dim).astype(np.float32) if spec.state_dim else None,
            next_state=rng.normal(size=spec.state_dim).astype(np.float32) if spec.state_dim else None))
    return store


CASES = {
    "state, 2 critics": dict(),
    "state, min over 2 of 5 critics": dict(num_critics=5, num_min_critics=2),
    "state, Q-filtered BC": dict(bc_weight=1.0),
    "pixels": dict(obs_mode="pixels", pixel_encoder="conv", state_dim=0, cameras=("front",), image_size=16,
                   encoder_channels=4, feature_dim=8, batch_size=32),
    "pixels, frozen encoder": dict(obs_mode="pixels", pixel_encoder="frozen", state_dim=0, cameras=("front",),
                                   image_size=16, frozen_channels=4, frozen_keypoints=4, batch_size=32),
}


@pytest.mark.parametrize("case", CASES)
def test_update_matches_the_previous_implementation(case):
    kw = dict(obs_mode="state", state_dim=6, hidden_dim=64, batch_size=64, utd_ratio=2, device="cpu", seed=3)
    kw.update(CASES[case])
    agents = [SACAgent(AgentConfig(**kw)), SACAgent(AgentConfig(**kw), reference_update=True)]
    rng = np.random.default_rng(0)
    store = _store(agents[0].spec, 200, rng)
    vec = store.vectors()
    for a in agents:
        a.fit_normalizer(vec)
    cfg = agents[0].cfg
    for i in range(5):
        batches = [store.sample(cfg.batch_size, rng, cfg.n_step, cfg.discount) for _ in range(cfg.utd_ratio)]
        infos = []
        for a in agents:
            torch.manual_seed(100 + i)  # the same noise and augmentation for both
            infos.append(a.update(batches))
        assert infos[0].keys() == infos[1].keys()
        for k in infos[0]:
            np.testing.assert_allclose(infos[0][k], infos[1][k], rtol=1e-4, atol=1e-5, err_msg=f"{case}: {k}")
    new, old = agents
    assert new.updates == old.updates == 10
    for name in ("actor", "critic", "target_critic", "encoder", "target_encoder"):
        sd_new, sd_old = getattr(new, name).state_dict(), getattr(old, name).state_dict()
        for k in sd_old:
            torch.testing.assert_close(sd_new[k], sd_old[k], rtol=1e-4, atol=1e-5, msg=f"{case}: {name}.{k}")
    torch.testing.assert_close(new.log_alpha, old.log_alpha)
    # the critic is trainable again after the actor step (it is frozen only inside it)
    assert all(p.requires_grad for p in new.critic.parameters())


def test_bfloat16_hidden_layers_stay_close_to_float32():
    """``hidden_dtype="bfloat16"`` changes only the rounding of the hidden layers: five updates from the same
    weights on the same batches end close to the float32 ones, and not bit-identical (the path is taken)."""
    kw = dict(obs_mode="state", state_dim=6, hidden_dim=64, batch_size=64, utd_ratio=2, device="cpu", seed=3)
    agents = [SACAgent(AgentConfig(**kw)), SACAgent(AgentConfig(**kw, hidden_dtype="bfloat16"))]
    rng = np.random.default_rng(0)
    store = _store(agents[0].spec, 200, rng)
    for a in agents:
        a.fit_normalizer(store.vectors())
    feat, act = torch.randn(32, 13), torch.rand(32, 4) * 2 - 1
    with torch.no_grad():
        q32, q16 = (a.critic(feat, act) for a in agents)
        mu32, mu16 = (a.actor(feat)[0] for a in agents)
    assert q16.dtype == mu16.dtype == torch.float32  # the heads stay float32
    assert not torch.equal(q32, q16)
    torch.testing.assert_close(q16, q32, rtol=0.0, atol=0.02 * float(q32.abs().max()))
    torch.testing.assert_close(mu16, mu32, rtol=0.0, atol=0.02 * float(mu32.abs().max()))
    for i in range(5):
        batches = [store.sample(64, rng, 3, 0.97) for _ in range(2)]
        infos = []
        for a in agents:
            torch.manual_seed(100 + i)
            infos.append(a.update(batches))
        for k in ("critic_loss", "q_mean", "entropy"):
            assert abs(infos[1][k] - infos[0][k]) <= 0.05 * abs(infos[0][k]) + 0.02, (i, k, infos)
    for (name, p32), p16 in zip(agents[0].critic.named_parameters(), agents[1].critic.parameters(), strict=True):
        assert p16.dtype == torch.float32  # the weights and their Adam state stay float32
        torch.testing.assert_close(p16, p32, rtol=0.0, atol=2e-3, msg=name)


def test_a_subset_of_critics_gives_those_rows_of_the_full_ensemble():
    cfg = AgentConfig(obs_mode="state", state_dim=6, num_critics=5, num_min_critics=2, device="cpu")
    critic = SACAgent(cfg).critic
    feat, act = torch.randn(32, 13), torch.rand(32, 4) * 2 - 1
    members = torch.tensor([3, 1])
    with torch.no_grad():
        torch.testing.assert_close(critic(feat, act, members), critic(feat, act)[members])


def test_update_rejects_an_empty_list():
    with pytest.raises(ValueError, match="no batches"):
        SACAgent(AgentConfig(obs_mode="state", device="cpu")).update([])
