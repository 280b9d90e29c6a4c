from __future__ import annotations

import importlib.util

import pytest

from charter.backends import load_backend
from charter.errors import BackendError


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_vllm_missing_is_a_clear_error() -> None:
    with pytest.raises(BackendError, match="needs vLLM"):
        load_backend("vllm:some/model")
