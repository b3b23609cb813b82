"""WorldSample robot side: MuJoCo Franka tasks, safety, cameras, actor, recorder, bag I/O."""
