"""What every local-weights backend does with a tokenizer, whatever engine runs the model.

The torch (`hf:`) and CTranslate2 (`ct2:`) backends render chats with the model's own chat
template, encode them, split an option-scoring query into context and continuation, and turn
generated token ids into a `Completion` the same way; this module holds that shared part, so the
two engines see exactly the same tokens for the same request.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from charter.backends.base import truncate_at_stop
from charter.records import Completion, Message, OptionQuery, Sampling

# Used when a tokenizer has no chat template (base models): plain turns, then the answer cue.
PLAIN_ROLES = {"system": "System", "user": "User", "assistant": "Assistant"}


def eos_ids(tokenizer: Any, generation_config: Any = None) -> list[int]:
    """Every token id that ends an answer: the generation config's and the tokenizer's."""
    ids: set[int] = set()
    gen_eos = getattr(generation_config, "eos_token_id", None)
    for value in (gen_eos, tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list):
            ids.update(int(v) for v in value)
    return sorted(ids)


class ChatTokens:
    """Chat rendering, encoding and decoding over a transformers tokenizer.

    Subclasses set `tokenizer` and `eos_ids` before using these methods.
    """

    tokenizer: Any
    eos_ids: list[int]

    def render(self, chat: Sequence[Message]) -> str:
        """The chat as the model sees it, ending where the assistant's answer starts."""
        messages = [m.model_dump() for m in chat]
        if self.tokenizer.chat_template:
            text: str = self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
            return text
        turns = [f"{PLAIN_ROLES[m['role']]}: {m['content']}" for m in messages]
        return "\n\n".join([*turns, "Assistant:"])

    def encode(self, text: str, *, rendered_chat: bool) -> list[int]:
        """Token ids of `text`. A chat rendered by a template already holds its special tokens;
        anything else gets the tokenizer's usual ones (a BOS for models that expect one)."""
        special = not (rendered_chat and self.tokenizer.chat_template)
        ids: list[int] = self.tokenizer(text, add_special_tokens=special)["input_ids"]
        return ids

    def encode_chat(self, chat: Sequence[Message]) -> list[int]:
        return self.encode(self.render(chat), rendered_chat=True)

    def _completion(self, row: Sequence[int], prompt_tokens: int, params: Sampling) -> Completion:
        """A completion from generated ids: cut at the first end-of-text, then at a stop string.
        The end-of-text token counts as generated (as in `transformers`)."""
        eos = set(self.eos_ids)
        cut = next((j for j, t in enumerate(row) if t in eos), None)
        used = row if cut is None else row[:cut]
        text = self.tokenizer.decode(list(used), skip_special_tokens=True)
        text, stopped = truncate_at_stop(text, params.stop)
        return Completion(
            text=text,
            finish_reason="stop" if (cut is not None or stopped) else "length",
            prompt_tokens=prompt_tokens,
            completion_tokens=len(row) if cut is None else cut + 1,
        )

    def _split_context(self, q: OptionQuery, option: str) -> tuple[list[int], list[int]]:
        """Token ids of a query's context and of one option's continuation after it."""
        is_chat = isinstance(q.prompt, list)
        prefix = self.render(q.prompt) if isinstance(q.prompt, list) else q.prompt
        # Trailing spaces belong to the option: BPE tokenizers attach a space to the word after
        # it, so "Answer: " + "A" must be scored as "Answer:" + " A".
        stripped = prefix.rstrip(" ")
        option = prefix[len(stripped) :] + option
        context = self.encode(stripped, rendered_chat=is_chat)
        continuation: list[int] = self.tokenizer(option, add_special_tokens=False)["input_ids"]
        if not context:
            context = [self.tokenizer.bos_token_id or self.eos_ids[0]]
        return context, continuation
