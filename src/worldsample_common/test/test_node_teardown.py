"""A node whose teardown hangs after ``on_shutdown`` still ends, with its code, inside launch's stop grace (CI saw
world_model hold the GIL in rclpy's destroy_node for over 6 s; the watchdog then exited 1 and failed a clean run)."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

NODE = textwrap.dedent("""
    import ctypes, sys, time
    from rclpy.node import Node
    from worldsample_common.nodes import support

    support.TEARDOWN_LIMIT_S = 1.0

    class Hang(Node):
        def __init__(self):
            super().__init__("hang_teardown")
            self.create_timer(0.05, lambda: print("spinning", flush=True))

        def on_shutdown(self):
            print("saved", flush=True)
            self.exit_code = int(sys.argv[2])

        def destroy_node(self):
            if sys.argv[1] == "python":
                time.sleep(60)  # a wait that lets other Python threads run
            else:
                ctypes.PyDLL(None).sleep(60)  # a C call that keeps the GIL: no Python thread runs
            super().destroy_node()

    support.run(Hang)
""")


@pytest.mark.parametrize("how,code", [("python", 0), ("gil", 0), ("gil", 3)])
def test_a_hung_teardown_after_on_shutdown_ends_the_process(how, code, tmp_path):
    script = tmp_path / "node.py"
    script.write_text(NODE)
    proc = subprocess.Popen([sys.executable, "-u", str(script), how, str(code)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"})
    try:
        assert proc.stdout.readline().strip() == "spinning"
        proc.send_signal(signal.SIGINT)
        t0 = time.monotonic()
        out, _ = proc.communicate(timeout=20)
        took = time.monotonic() - t0
    finally:
        proc.kill()
    assert "saved" in out  # on_shutdown ran before the teardown that hangs
    assert took < 15, out  # launch's SIGINT + SIGTERM grace; the node would have been SIGKILLed after it
    assert proc.returncode == code, out  # the node's own code: its data was saved before the hang
    if how == "python":
        assert f"did not finish in 1 s; the node's data was saved before it: exiting with {code}" in out
    else:  # faulthandler's watchdog printed every thread's stack into the log, then the C timer ended the process
        assert "destroy_node" in out and "Thread" in out, out
