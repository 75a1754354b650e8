"""The agent CLIs reuse the SDK tests' stack (real mock-upstream and
modelswitch binaries on ephemeral loopback ports, generated config)."""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "sdk_stack", Path(__file__).resolve().parents[1] / "sdk" / "conftest.py")
sdk_stack = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sdk_stack)

stack = sdk_stack.stack  # the session fixture
