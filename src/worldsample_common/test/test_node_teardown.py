"""A node whose teardown hangs after ``on_shutdown`` still ends, with its code, inside launch's stop grace."""

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

        def destroy_node(self):
            if sys.argv[1] == "python":
                time.sleep(60)  # a wait that lets other Python threads run
            else:
                ctypes.PyDLL(None).sleep(60)  # a C call that keeps the GIL: no Python thread runs
            super().destroy_node()

    support.run(Hang)
""")


@pytest.mark.parametrize("how", ["python", "gil"])
def test_a_hung_teardown_after_on_shutdown_ends_the_process(how, tmp_path):
    script = tmp_path / "node.py"
    script.write_text(NODE)
    proc = subprocess.Popen([sys.executable, "-u", str(script), how], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
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
    if how == "python":
        assert proc.returncode == 0, out
        assert "did not finish in 1 s; the node's data was saved before it: exiting with 0" in out
    else:  # faulthandler's watchdog: every thread's stack in the log, exit 1
        assert proc.returncode == 1, out
        assert "destroy_node" in out and "Thread" in out, out
