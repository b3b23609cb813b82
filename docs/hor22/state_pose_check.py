"""Does the block's yaw and velocity in the state cut the MLP ensemble's object error? (issue 22, sixteenth sitting)

    python docs/hor22/state_pose_check.py 60

Push, noisy-expert data: 10 demos + 60 rollouts with N(0, 0.6) + 30 with N(0, 1.0) on the expert's action; held out 20
with N(0, 0.3) and 20 with N(0, 0.8). The same MLP ensemble (`MLPDynamicsConfig()`) fitted twice: on [proprio, state]
and on [proprio, state, sin 4yaw, cos 4yaw, vx, vy, wz] of the block; open-loop object RMSE under the recorded actions."""
import dataclasses
import math
import sys
import time

import mujoco
import numpy as np
from worldsample_common.core.episode import Source
from worldsample_control.core.demos import ExpertPolicy
from worldsample_control.core.rollout import run_episode
from worldsample_control.core.sim import EnvConfig, make_env
from worldsample_worldmodel.core.mlp_dynamics import (
    MLPDynamicsConfig,
    train_mlp_dynamics,
    transitions_from_episodes,
)
from worldsample_worldmodel.core.state_error import MLPPredictor, open_loop_starts, recorded_actions

N_HELD = 20
TASK = "push"  # one loose object (the block): the first free joint


class WithPose:
    """The env with the block's yaw (as sin/cos of 4 yaw: a cube looks the same every 90 degrees) and its planar
    velocity appended to the privileged state."""

    def __init__(self, env):
        self.env, m = env, env.model
        j = next(j for j in range(m.njnt) if m.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE)
        self.qa, self.va = m.jnt_qposadr[j], m.jnt_dofadr[j]

    def __getattr__(self, k):
        return getattr(self.env, k)

    def _aug(self, obs):
        d = self.env.data
        w, x, y, z = d.qpos[self.qa + 3:self.qa + 7]
        yaw = math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
        v = d.qvel[self.va:self.va + 6]
        extra = np.array([math.sin(4 * yaw), math.cos(4 * yaw), v[0], v[1], v[5]], np.float32)
        return dataclasses.replace(obs, state=np.concatenate([obs.state, extra]).astype(np.float32))

    def reset(self, **kw):
        return self._aug(self.env.reset(**kw))

    def step(self, a):
        r = self.env.step(a)
        return dataclasses.replace(r, observation=self._aug(r.observation))


def rmse_mm(e):
    return 1e3 * math.sqrt(float((e ** 2).mean())) if len(e) else float("nan")


def push_data(n_train=60, n_held=N_HELD):
    """(train, held, state_dim): push episodes whose state carries the pose columns after the first state_dim."""
    env = make_env(TASK, EnvConfig(render=False, max_episode_steps=0))
    posed = WithPose(env)

    def episodes(n, noise, seed0):
        return [run_episode(posed, ExpertPolicy(TASK, env, action_noise=noise, seed=s), seed=s, source=Source.REAL)
                for s in range(seed0, seed0 + n)]

    train = episodes(10, 0.0, 500) + episodes(n_train, 0.6, 10_000) + episodes(n_train // 2, 1.0, 20_000)
    held = episodes(n_held, 0.3, 900_000) + episodes(n_held, 0.8, 950_000)
    return train, held, env.state_dim


def without_pose(episodes, state_dim):
    return [dataclasses.replace(e, states=e.states[:, :state_dim]) for e in episodes]


def open_loop_errors(model, held, h):
    """Open loop under the recorded actions, every start with h steps left: (object error (B, 3) [m], the block moved
    by more than 1 mm (B,), end-effector error (B, 3) [m]) at step h."""
    ei, ts = open_loop_starts(held)
    ok = np.array([ts[b] + h <= held[i].length for b, i in enumerate(ei)])
    i2, t2 = ei[ok], ts[ok]
    pairs = list(zip(i2, t2, strict=True))
    ol = MLPPredictor(model, held[0].proprio.shape[1]).predict(held, i2, t2, recorded_actions(held, i2, t2, h))
    real = np.stack([held[i].states[s + h, :3] for i, s in pairs])
    moving = np.array([np.linalg.norm(held[i].states[s + h, :3] - held[i].states[s, :3]) > 1e-3 for i, s in pairs])
    ee = ol.proprio[:, h - 1, :3] - np.stack([held[i].proprio[s + h, :3] for i, s in pairs])
    return ol.state[:, h - 1, :3] - real, moving, ee


def main():
    t0 = time.time()
    train, held, state_dim = push_data(int(sys.argv[1]) if len(sys.argv) > 1 else 60)
    print(f"data {time.time() - t0:.0f} s: {sum(e.length for e in train)} train transitions, "
          f"{sum(e.length for e in held)} held", flush=True)
    for name, tr, he in (("base state", without_pose(train, state_dim), without_pose(held, state_dim)),
                         ("+ yaw, velocity", train, held)):
        t0 = time.time()
        m, info = train_mlp_dynamics(transitions_from_episodes(tr), MLPDynamicsConfig(seed=0))
        out = []
        for h in (1, 4, 8):
            err, moving, ee = open_loop_errors(m, he, h)
            out.append(f"h={h}: object {rmse_mm(err):.1f} mm (moving {rmse_mm(err[moving]):.1f}, "
                       f"n={moving.sum()}/{len(err)}), ee {rmse_mm(ee):.1f}")
        print(f"{name}: holdout loss {info['holdout_loss']:.3f} train {info['train_loss']:.3f} best "
              f"{info['best_step']} ({time.time() - t0:.0f} s) | " + "; ".join(out), flush=True)


if __name__ == "__main__":
    main()
