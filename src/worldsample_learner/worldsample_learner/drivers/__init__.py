"""In-process drivers: ROS-free loops that put the cores together with a simulator.

- `learn.train_in_process`: one environment step, then learner updates (``worldsample learn``,
  ``worldsample bench learner``); the environment is handed in (the learner core never builds it).
- `experiment`: the paper's comparisons in simulation (``worldsample experiment``): demos, world
  model pre-training, runs of every mode and seed in worker processes, tables and plots.

They sit on top of the learner core (and use the world model and the simulator below it); no core
imports them, and they import no rclpy (the ROS graph is `worldsample_bringup`).
"""
