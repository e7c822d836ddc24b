"""An internal LLM-agent skill over private text.

The spec gives internal capabilities the privacy-sensitive work; these skills are where that
work can go when it needs a language model. The model runs in this process (SmolLM2 through
llama-cpp-python, see :mod:`hybridmcp.capabilities.local_model`), so the text given here never
leaves it.
A 135M model is weak: answers are short and bounded, and an empty answer is a provider
failure the coordinator can reallocate, not a result.
"""

from __future__ import annotations

import re

from hybridmcp.capabilities.local_model import LocalModel, get_local_model
from hybridmcp.errors import ProviderError, TaskError

__all__ = ["local_answer", "local_summarize"]

_ANSWER_TOKENS = 128
_TOKENS_PER_SENTENCE = 48
_MAX_SUMMARY_TOKENS = 400
# Room for the chat template's special tokens and role headers around the text we count.
_TEMPLATE_TOKENS = 48

_ANSWER_SYSTEM = (
    "You answer questions briefly and truthfully. Use the context when one is given; if it "
    "does not contain the answer, say that you do not know."
)
_SUMMARY_SYSTEM = "You summarize text faithfully and briefly, without adding facts."

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _fit(model: LocalModel, text: str, *, reserved: int, fixed: str) -> str:
    """Cut ``text`` so prompt and answer fit the context window together.

    Cutting the end of a long private document is a known loss; overflowing the window would
    fail the whole call.
    """
    budget = model.n_ctx - reserved - model.count_tokens(fixed) - _TEMPLATE_TOKENS
    return model.truncate(text, max(budget, 0))


def _generate(model: LocalModel, system: str, user: str, max_tokens: int) -> str:
    completion = model.chat(
        [{"role": "system", "content": system}, {"role": "user", "content": user}],
        max_tokens=max_tokens,
        temperature=0.0,
    )
    text = completion.text.strip()
    if not text:
        raise ProviderError(f"local model {model.name} returned no text")
    return text


def _first_sentences(text: str, count: int) -> str:
    sentences = [s for s in _SENTENCE_END.split(text.strip()) if s]
    return " ".join(sentences[:count])


def local_answer(question: str, context: str = "") -> dict[str, str]:
    """Answer ``question`` from private ``context`` with the in-process model."""
    if not isinstance(question, str) or not question.strip():
        raise TaskError("local_answer: question must be a non-empty string")
    model = get_local_model()
    question = question.strip()
    if context and context.strip():
        fixed = _ANSWER_SYSTEM + question
        context = _fit(model, context.strip(), reserved=_ANSWER_TOKENS, fixed=fixed)
        user = f"Context:\n{context}\n\nQuestion: {question}"
    else:
        user = question
    answer = _generate(model, _ANSWER_SYSTEM, user, _ANSWER_TOKENS)
    return {"answer": answer, "model": model.name}


def local_summarize(text: str, max_sentences: int = 3) -> dict[str, str]:
    """Summarize private ``text`` in at most ``max_sentences`` sentences.

    The sentence limit is enforced on the output too: a small model does not reliably follow
    length instructions, and callers rely on the bound.
    """
    if not isinstance(text, str) or not text.strip():
        raise TaskError("local_summarize: text must be a non-empty string")
    if isinstance(max_sentences, bool) or not isinstance(max_sentences, int) or max_sentences < 1:
        raise TaskError(
            f"local_summarize: max_sentences must be a positive integer, got {max_sentences!r}"
        )
    model = get_local_model()
    max_tokens = min(_TOKENS_PER_SENTENCE * max_sentences, _MAX_SUMMARY_TOKENS)
    instruction = f"Summarize this text in at most {max_sentences} sentence(s):"
    body = _fit(model, text.strip(), reserved=max_tokens, fixed=_SUMMARY_SYSTEM + instruction)
    summary = _generate(model, _SUMMARY_SYSTEM, f"{instruction}\n\n{body}", max_tokens)
    return {"summary": _first_sentences(summary, max_sentences), "model": model.name}
