# One-off check (thirteenth sitting): with the same MLP ensemble and the same demos as starts, do the video path and
# the frameless path give the same step-0 uncertainty? Run from the repo root after a push experiment has written
# runs/push20k/policy/push/{demos.pkl,wm_pretrained}: python docs/ff22/same_model_check.py
import shutil, tempfile
import numpy as np, torch
from pathlib import Path
torch.set_num_threads(1)
from worldsample_learner.drivers.experiment import ExperimentConfig, wm_service_config, _load_pickle
from worldsample_worldmodel.core.source import VideoSourceConfig, VideoWorldModelSource
from worldsample_control.core.sim.tasks import judge_states
demos = _load_pickle(Path("runs/push20k/policy/push/demos.pkl"))
cfg = ExperimentConfig(wm_state_model="mlp")
class P:
    version = "zero"
    def act_batch(self, images, proprio, noise_std=0.0, rng=None, state=None):
        return np.zeros((len(proprio), 4), np.float32)
srcs = {}
for fr in (True, False):
    d = Path(tempfile.mkdtemp()); shutil.copytree("runs/push20k/policy/push/wm_pretrained", d / "wm")
    s = VideoWorldModelSource(VideoSourceConfig(service=wm_service_config(cfg, d / "wm", 0), state_in_proprio=True, state_model="mlp", frames=fr, seed=0), judge=judge_states)
    s.add_demos(demos)
    srcs[fr] = s
srcs[True].train_state_model(); srcs[False].mlp = srcs[True].mlp; srcs[False].mlp_uncertainty_ref = srcs[True].mlp_uncertainty_ref; srcs[False].mlp_metrics = list(srcs[True].mlp_metrics)
for fr, s in srcs.items():
    eps = s.generate(P(), 256, 3)
    u0 = np.array([e.uncertainty[0] for e in eps])
    st = np.array([np.concatenate([e.proprio[0], e.states[0]]) for e in eps])
    print("frames", fr, "n", len(eps), "median u0", np.median(u0).round(3), "mean len", np.mean([e.length for e in eps]).round(2), "start mean", st.mean(0)[:6].round(3))
