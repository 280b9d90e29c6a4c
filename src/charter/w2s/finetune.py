"""`finetune` mode: a transformer trained end to end with LoRA and a classification head.

The model is the base of a causal LM (`embedded` or `hf:PATH`), its last hidden states
mean-pooled over the text's tokens and read by a linear head (2 classes, zero-initialised, as
the probe heads). Only the LoRA adapters and the head are trained, with the same losses as probe
mode (`xent` on soft labels, `logconf`), so probe and finetune results differ only in what is
trained. Training runs through `accelerate.Accelerator`: on one CPU or GPU as is, and on several
GPUs under `accelerate launch` (each process then trains on its shard of every epoch; every
process predicts the full test set, so results agree).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray
from pydantic import Field

from charter.errors import ConfigError
from charter.records import Strict
from charter.w2s.losses import logconf_loss, xent_soft

if TYPE_CHECKING:
    import torch

FINETUNABLE = ("embedded", "hf:")


class FinetuneConfig(Strict):
    """How a transformer is fine-tuned in `finetune` mode."""

    epochs: int = Field(2, ge=1, description="Passes over the training rows.")
    batch_size: int = Field(16, ge=2, description="Rows per step (logconf thresholds per batch).")
    lr: float = Field(5e-4, gt=0.0, description="AdamW learning rate (LoRA and head).")
    weight_decay: float = Field(0.0, ge=0.0)
    lora_r: int = Field(8, ge=1)
    lora_alpha: int = Field(16, ge=1)
    lora_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "v_proj"])
    max_length: int = Field(64, ge=4, description="Tokens kept per text.")
    alpha_max: float = Field(0.5, ge=0.0, le=1.0, description="logconf: final weight α.")
    warmup_frac: float = Field(0.2, ge=0.0, le=1.0, description="logconf: α warm-up fraction.")


def is_finetunable(spec: str) -> bool:
    """Whether `spec` names a transformer that finetune mode can train (not tfidf/minilm)."""
    return spec.split("@", 1)[0].startswith(FINETUNABLE)


def model_dir(spec: str) -> str:
    """The local folder of a finetunable model spec."""
    base = spec.split("@", 1)[0]
    if base == "embedded":
        from charter.backends.gguf_convert import ensure_embedded_model

        return str(ensure_embedded_model())
    if base.startswith("hf:") and base[3:]:
        return base[3:]
    raise ConfigError(
        f"model {spec!r} cannot be fine-tuned: finetune mode trains `embedded` or `hf:PATH` "
        "models (tfidf and minilm are probe-only; as a weak supervisor they stay probes)"
    )


@dataclass
class FinetunedClassifier:
    """A LoRA-adapted encoder + head, with its tokenizer, ready to predict."""

    module: Any  # _Classifier (an nn.Module), possibly wrapped by accelerate
    tokenizer: Any
    max_length: int
    device: Any

    def predict_proba(self, texts: Sequence[str], batch_size: int = 32) -> NDArray[np.float64]:
        import torch

        self.module.eval()
        out = []
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                ids, mask = _encode(self.tokenizer, texts[start : start + batch_size], self)
                logits = self.module(ids.to(self.device), mask.to(self.device))
                out.append(torch.softmax(logits.double(), dim=-1).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 2))


def _encode(tok: Any, texts: Sequence[str], clf: Any) -> tuple[torch.Tensor, torch.Tensor]:
    enc = tok(
        list(texts),
        truncation=True,
        max_length=clf.max_length,
        padding=True,
        return_tensors="pt",
    )
    return enc["input_ids"], enc["attention_mask"]


def _classifier_module(base: Any, hidden: int) -> Any:
    import torch

    class _Classifier(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.base = base
            self.head = torch.nn.Linear(hidden, 2)
            torch.nn.init.zeros_(self.head.weight)
            torch.nn.init.zeros_(self.head.bias)

        def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            states = self.base(input_ids=ids, attention_mask=mask).last_hidden_state.float()
            m = mask.unsqueeze(-1).float()
            pooled = (states * m).sum(1) / m.sum(1).clamp(min=1.0)
            return self.head(pooled)  # type: ignore[no-any-return]

    return _Classifier()


def finetune_classifier(
    spec: str,
    texts: Sequence[str],
    targets: NDArray[np.float32],
    *,
    loss: str,
    seed: int,
    config: FinetuneConfig,
    progress: bool = False,
    desc: str = "finetune",
) -> FinetunedClassifier:
    """Train LoRA adapters + a head on `texts` to the probability rows `targets` (n, 2)."""
    # long: one training loop (LoRA, head, accelerate) whose state the steps share
    import torch
    from accelerate import Accelerator
    from peft import LoraConfig, get_peft_model
    from tqdm.auto import tqdm
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if len(texts) != len(targets):
        raise ValueError(f"{len(texts)} texts but {len(targets)} targets")
    if len(texts) < 2:
        raise ConfigError("finetune mode needs at least 2 training rows")
    path = model_dir(spec)
    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "right"
    lm = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    base = lm.get_decoder() if hasattr(lm, "get_decoder") else lm.base_model
    names = {n.rsplit(".", 1)[-1] for n, _ in base.named_modules()}
    missing = [m for m in config.target_modules if m not in names]
    if missing:
        raise ConfigError(f"{spec}: no modules named {missing} to put LoRA adapters on")
    peft_base = get_peft_model(
        base,
        LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=list(config.target_modules),
        ),
    )
    module = _classifier_module(peft_base, int(lm.config.hidden_size))
    accelerator = Accelerator()
    params = [p for p in module.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    y = torch.from_numpy(np.asarray(targets, dtype=np.float32))
    gen = torch.Generator().manual_seed(seed)
    loader: Any = torch.utils.data.DataLoader(
        list(range(len(texts))),  # type: ignore[arg-type]
        batch_size=config.batch_size,
        shuffle=True,
        generator=gen,
    )
    module, opt, loader = accelerator.prepare(module, opt, loader)
    clf = FinetunedClassifier(module, tok, config.max_length, accelerator.device)
    total = max(1, len(loader) * config.epochs)
    step = 0
    module.train()
    with tqdm(total=total, desc=desc, unit="step", disable=not progress, leave=False) as bar:
        for _ in range(config.epochs):
            for idx in loader:
                idx = idx.cpu()
                if len(idx) < 2:
                    continue
                ids, mask = _encode(tok, [texts[int(i)] for i in idx], clf)
                logits = module(ids.to(accelerator.device), mask.to(accelerator.device))
                target = y[idx].to(accelerator.device)
                if loss == "logconf":
                    value = logconf_loss(
                        logits,
                        target,
                        step / total,
                        alpha_max=config.alpha_max,
                        warmup_frac=config.warmup_frac,
                    )
                else:
                    value = xent_soft(logits, target)
                opt.zero_grad()
                accelerator.backward(value)
                opt.step()
                step += 1
                bar.update(1)
                bar.set_postfix_str(f"loss {float(value.detach()):.3f}", refresh=False)
    return clf
