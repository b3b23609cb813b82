"""A stop signal during a call into rclpy is raised after the call, never inside it.

CI saw the loop crash on Ctrl-C with ``RuntimeError: Unable to convert call argument '0' to Python
object``: the KeyboardInterrupt raised by Python's SIGINT handler while pybind11 converted the
arguments of ``take_message`` became that RuntimeError, and the run exited 1 instead of 130.
"""

from __future__ import annotations

import os
import signal

import pytest
from worldsample_bringup.process_runner import StopSignal, signals_deferred, stop_signals


def _send(sig: int) -> None:
    os.kill(os.getpid(), sig)  # the handler runs at the next bytecode of the main thread


def test_ctrl_c_inside_is_raised_at_the_end_of_the_block():
    reached_end_of_body = False
    with pytest.raises(KeyboardInterrupt):
        with signals_deferred():
            _send(signal.SIGINT)
            for _ in range(1000):  # Python code runs on: the handler only noted the signal
                pass
            reached_end_of_body = True
    assert reached_end_of_body
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back


def test_sigterm_inside_stop_signals_becomes_a_stop_signal_after_the_block():
    with stop_signals():
        with pytest.raises(StopSignal) as info:
            with signals_deferred():
                _send(signal.SIGTERM)
                sum(range(1000))
        assert info.value.signum == signal.SIGTERM


def test_nothing_raised_without_a_signal_and_the_first_of_two_wins():
    with signals_deferred():
        pass
    with stop_signals(), pytest.raises(StopSignal) as info:
        with signals_deferred():
            _send(signal.SIGHUP)
            sum(range(1000))
            _send(signal.SIGINT)
            sum(range(1000))
    assert info.value.signum == signal.SIGHUP
