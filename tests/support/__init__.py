"""Helpers shared by the tests: self-identifying frames and streams, independent recorders of what the
trainer, the examples and the Ray actors did, and builders for the C++ test programs.

Test files import them as ``support.<module>`` (pytest puts ``tests/`` on ``sys.path`` through its
conftest.py); scripts run by path (ray_netns_run.py, interrupt_gate.py) put it there themselves."""
