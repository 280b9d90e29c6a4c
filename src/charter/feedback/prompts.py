"""The multiple-choice prompts of the AI-feedback labeller, in our own wording.

A labelling prompt shows the conversation, the two answers as options (A) and (B) and one
comparison question from the constitution, and ends where the feedback model writes the option
letter. The constitution's labelling examples come first, worked in the same format, so that
the prompts of one run share a long identical prefix (the backend computes it once).

Why the prompt ends with "The answer is: (" and the options are "A" and "B": BPE tokenizers
split "(" from the letter that follows it ("(A)" is "(" + "A" + ")"), so the letter is one token
after the text the model has already read, scored exactly where the model would write it, and
"A"/"B" differ in that one token only. Ending with "The answer is:" and scoring " (A)" would spend
two of three scored tokens on " (" and ")", which are the same for both options.
"""

from __future__ import annotations

from collections.abc import Sequence

from charter.constitution.schema import LabelExample
from charter.records import Message

LETTERS = ("A", "B")
ANSWER_CUE = "The answer is: ("
COT_CUE = "Let's think step by step:"
COT_ANSWER_CUE = "So the answer is: ("
# The chat format's instruction after the options; the answer is scored as "(A)" / "(B)".
CHAT_INSTRUCTION = "Answer with (A) or (B) only."
CHAT_OPTIONS = ("(A)", "(B)")
YES_NO = ("Yes", "No")
ROLE_NAMES = {"system": "System", "user": "Human", "assistant": "Assistant"}


def render_conversation(messages: Sequence[Message]) -> str:
    """A conversation as plain "Human:"/"Assistant:" turns.

    >>> render_conversation([Message(role="user", content="Hi")])
    'Human: Hi'
    """
    return "\n\n".join(f"{ROLE_NAMES[m.role]}: {m.content.strip()}" for m in messages)


def question_block(
    conversation: Sequence[Message], question: str, option_a: str, option_b: str
) -> str:
    """The question part of a labelling prompt, without the answer cue."""
    return (
        "Here is a conversation between a person and an AI assistant.\n\n"
        f"{render_conversation(conversation)}\n\n"
        f"{question.strip()}\n\n"
        f"Options:\n(A) {option_a.strip()}\n(B) {option_b.strip()}\n\n"
    )


def example_block(example: LabelExample, index: int, *, cot: bool) -> str:
    """A worked example; the better answer is (A) in even and (B) in odd examples, so the
    examples themselves teach no preference for a letter."""
    chosen_first = index % 2 == 0
    a, b = (
        (example.chosen, example.rejected) if chosen_first else (example.rejected, example.chosen)
    )
    question = example.question or "Which of these assistant responses is better?"
    letter = "A" if chosen_first else "B"
    text = question_block(example.messages, question, a, b)
    if cot and example.reasoning:
        return f"{text}{COT_CUE} {example.reasoning.strip()}\n{COT_ANSWER_CUE}{letter})\n\n\n"
    return f"{text}{ANSWER_CUE}{letter})\n\n\n"


def few_shot_block(examples: Sequence[LabelExample], *, cot: bool = False) -> str:
    return "".join(example_block(e, i, cot=cot) for i, e in enumerate(examples))


def mc_prompt(
    few_shot: str,
    conversation: Sequence[Message],
    question: str,
    option_a: str,
    option_b: str,
) -> str:
    """The full scored prompt: examples, the question, and the cue for the option letter.

    >>> p = mc_prompt("", [Message(role="user", content="Hi")], "Which is kinder?", "x", "y")
    >>> p.endswith("(A) x\\n(B) y\\n\\nThe answer is: (")
    True
    """
    return few_shot + question_block(conversation, question, option_a, option_b) + ANSWER_CUE


def cot_request(
    few_shot: str, conversation: Sequence[Message], question: str, option_a: str, option_b: str
) -> list[Message]:
    """The chat that asks the feedback model for its reasoning (chain-of-thought labelling)."""
    text = few_shot + question_block(conversation, question, option_a, option_b)
    return [
        Message(
            role="user",
            content=f"{text}Think it through step by step before choosing (A) or (B).",
        )
    ]


def cot_prompt(
    few_shot: str,
    conversation: Sequence[Message],
    question: str,
    option_a: str,
    option_b: str,
    reasoning: str,
) -> str:
    """The scored prompt after the model's reasoning: the letter comes after "So the answer is"."""
    text = few_shot + question_block(conversation, question, option_a, option_b)
    return f"{text}{COT_CUE} {reasoning.strip()}\n{COT_ANSWER_CUE}"


def mc_chat(
    examples: Sequence[LabelExample],
    conversation: Sequence[Message],
    question: str,
    option_a: str,
    option_b: str,
) -> list[Message]:
    """The chat format of a labelling question: each worked example is a user turn answered
    "(A)" or "(B)" (alternating, so they teach no letter), then the question itself; the
    options "(A)" and "(B)" are scored as the start of the assistant's answer."""
    turns: list[Message] = []
    for i, e in enumerate(examples):
        first = i % 2 == 0
        a, b = (e.chosen, e.rejected) if first else (e.rejected, e.chosen)
        asked = e.question or "Which of these assistant responses is better?"
        text = question_block(e.messages, asked, a, b)
        turns.append(Message(role="user", content=text + CHAT_INSTRUCTION))
        turns.append(Message(role="assistant", content=CHAT_OPTIONS[0 if first else 1]))
    text = question_block(conversation, question, option_a, option_b)
    return [*turns, Message(role="user", content=text + CHAT_INSTRUCTION)]


def pointwise_chat(conversation: Sequence[Message], question: str, answer: str) -> list[Message]:
    """One answer judged alone under a comparison principle: does it do well by the principle?
    The model answers "Yes" or "No" (scored as the start of its turn)."""
    text = (
        "Here is a conversation between a person and an AI assistant.\n\n"
        f"{render_conversation(conversation)}\n\nAssistant: {answer.strip()}\n\n"
        f"A reviewer compares assistant responses by this question: {question.strip()}\n"
        "Judged by that question, is this response a good one? Answer Yes or No."
    )
    return [Message(role="user", content=text)]
