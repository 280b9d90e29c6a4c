"""charter inside Inspect AI (`pip install charter[inspect]`, installed by `make setup`).

- `charter/SPEC` is an Inspect model provider for any charter backend spec
  (`inspect eval TASK --model charter/embedded`, `charter/hf:PATH`, `charter/ct2:PATH`,
  `charter/fake`), offline (`provider.py`);
- `charter/harmful_compliance` and `charter/over_refusal` are Inspect tasks on charter's builtin
  prompt sets, scored with charter's refusal detector, with Wilson 95% intervals (`tasks.py`);
- `pairwise.py` holds the constitutional pairwise judge as an Inspect scorer, with win-rate and
  Bradley–Terry Elo metrics computed by `charter.evaluate.stats`.

Inspect finds them through the `inspect_ai` entry point in `pyproject.toml`
(`charter.inspectai._registry`). Importing this package does not import Inspect.
"""
