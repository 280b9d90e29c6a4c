"""The stage contract: every stage of charter is a typed config plus `run(ctx, inputs, config)`.

A stage (generate, sl, label, train sft/dpo/rm, evaluate, redteam, oversight, evals) is a
`Stage`: its name, the pydantic class of its config, and one function
`run(ctx, inputs, config) -> result` whose result is a pydantic model. `ctx` (`StageContext`) is
what a stage gets from the process it runs in:

- `run`: the run folder (its manifest records each stage's inputs and outcome, for `--resume`);
  None for redteam, oversight and evals, which keep their own resumable state in `root`;
- `out`: the folder inside the run where this stage writes its files (the run folder itself for a
  single-stage command such as `charter sl --out DIR`, `DIR/sl` inside `charter run`);
- `pool`: the one `BackendPool` of the process, so a model several stages share loads once;
- `constitution`: the resolved `Constitution` object (parsed once, at the edge);
- `progress`: whether to draw progress bars; `seed`: the run's seed.

`charter run` (`charter.pipeline`) is a loop over `STAGES`; each single-stage command calls the
same `Stage.run`, so both paths run the same code (a test checks it). Manifest keys are the stage
names (`sl`, `label`, `train/sft`, ...), with `/step` for a stage's inner steps (`sl/helpful`,
`label/pairs`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel

from charter.backends.pool import BackendPool
from charter.errors import CharterError
from charter.runs import RunFolder

if TYPE_CHECKING:
    from charter.constitution.schema import Constitution

C = TypeVar("C", bound=BaseModel)
I = TypeVar("I")  # noqa: E741 - the conventional name of a stage's inputs type
R = TypeVar("R", bound=BaseModel)


@dataclass
class StageContext:
    """What a stage gets from its process: see the module docstring.

    `run` is None for the stages that keep their own resumable state in their folder
    (redteam, oversight, evals); they write into `root` and follow `resume` and `overwrite`.
    """

    run: RunFolder | None
    pool: BackendPool
    constitution: Constitution | None = None
    progress: bool = True
    seed: int = 0
    folder: str = ""  # this stage's subfolder of the run folder ("" = the run folder itself)
    root: Path | None = None  # without a run folder: where the stage writes
    resume: bool = False
    overwrite: bool = False

    @property
    def runfolder(self) -> RunFolder:
        """The run folder whose manifest records this stage (the manifest-keeping stages)."""
        if self.run is None:
            raise CharterError("this stage records its work in a run folder's manifest")
        return self.run

    @property
    def out(self) -> Path:
        """The folder this stage writes its files into (created on first use)."""
        base = self.run.path if self.run is not None else self.root
        if base is None:
            raise CharterError("this stage needs a run folder or an output folder")
        path = base / self.folder if self.folder else base
        path.mkdir(parents=True, exist_ok=True)
        return path

    def file(self, name: str) -> str:
        """`name` relative to the run folder (how the manifest lists a stage's outputs)."""
        return f"{self.folder.rstrip('/')}/{name}" if self.folder else name

    def inside(self, folder: str) -> StageContext:
        """The same context for a stage that writes into `folder` of the run folder."""
        return replace(self, folder=folder)

    def need_constitution(self) -> Constitution:
        if self.constitution is None:
            raise CharterError("this stage needs a constitution")
        return self.constitution


@dataclass
class Stage(Generic[I, C, R]):
    """One stage: its name (also its manifest key), config class and run function."""

    name: str
    config: type[C]
    run: Callable[[StageContext, I, C], R]
    summary: str = ""


def stages() -> dict[str, Stage[Any, Any, Any]]:
    """Every stage, by name, in pipeline order (imports the stage modules; none loads torch)."""
    from charter.evaluate.stage import EVALUATE
    from charter.feedback.stage import LABEL
    from charter.generate import GENERATE
    from charter.oversight.run import OVERSIGHT
    from charter.redteam.evals import EVALS
    from charter.redteam.run import REDTEAM
    from charter.sl import SL
    from charter.train.stage import TRAIN_DPO, TRAIN_GRPO, TRAIN_RLOO, TRAIN_RM, TRAIN_SFT

    found: list[Stage[Any, Any, Any]] = [
        GENERATE,
        SL,
        LABEL,
        TRAIN_SFT,
        TRAIN_DPO,
        TRAIN_RM,
        TRAIN_GRPO,
        TRAIN_RLOO,
        EVALUATE,
        REDTEAM,
        OVERSIGHT,
        EVALS,
    ]
    return {s.name: s for s in found}
