"""The model: any OpenAI-compatible chat-completions endpoint (OpenAI, OpenRouter, Ollama,
vLLM, LM Studio, llama.cpp) through the `openai` client, streamed, with retries on 429 and
5xx, one-line errors, and a price table that turns usage into cost."""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

from baton.config import Price, Settings
from baton.core.errors import BatonError, InvalidInput

# USD per million tokens. Override or extend with BATON_PRICES (JSON) or a [prices] table in
# BATON_HOME/config.toml: {"model": {"input": 2.5, "output": 10, "cache_read": 1.25}}.
DEFAULT_PRICES: dict[str, dict[str, float]] = {
    "gpt-4o": {"input": 2.50, "output": 10.00, "cache_read": 1.25},
    "gpt-4o-mini": {"input": 0.15, "output": 0.60, "cache_read": 0.075},
    "gpt-4.1": {"input": 2.00, "output": 8.00, "cache_read": 0.50},
    "gpt-4.1-mini": {"input": 0.40, "output": 1.60, "cache_read": 0.10},
    "gpt-4.1-nano": {"input": 0.10, "output": 0.40, "cache_read": 0.025},
    "o3": {"input": 2.00, "output": 8.00, "cache_read": 0.50},
    "o4-mini": {"input": 1.10, "output": 4.40, "cache_read": 0.275},
}
DEFAULT_CONTEXT_WINDOW = 128_000
NO_MODEL = (
    "no model configured: set BATON_MODEL (with BATON_BASE_URL and BATON_API_KEY for an "
    "OpenAI-compatible endpoint), or model/base_url/api_key in BATON_HOME/config.toml, "
    "or pass --model"
)


class ModelError(BatonError):
    """The model endpoint failed in a way the user has to act on (one line)."""

    code = "model_error"
    exit_code = 1


class NoModel(InvalidInput):
    """No model is configured (exit 2, like any usage error)."""


class Interrupted(Exception):
    """The user stopped the current turn (Ctrl-C, or a cancel flag set by a caller)."""


class Cancel:
    """A cancellation flag for one turn. `check()` raises Interrupted once it is set. While
    installed as the SIGINT handler, Ctrl-C sets it and raises KeyboardInterrupt at once,
    except inside `critical()` (a write to the store), where it only sets the flag."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._critical = 0

    def set(self) -> None:
        self.event.set()

    def clear(self) -> None:
        self.event.clear()

    @property
    def is_set(self) -> bool:
        return self.event.is_set()

    def check(self) -> None:
        if self.event.is_set():
            raise Interrupted()

    @contextlib.contextmanager
    def critical(self) -> Iterator[None]:
        self._critical += 1
        try:
            yield
        finally:
            self._critical -= 1

    def _on_sigint(self, signum: int, frame: Any) -> None:
        self.event.set()
        if not self._critical:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def installed(self) -> Iterator[Cancel]:
        """Ctrl-C sets this flag for the duration (main thread only; elsewhere a no-op)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = signal.signal(signal.SIGINT, self._on_sigint)
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, previous)


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as the model wrote it

    def parsed(self) -> tuple[dict[str, Any], str | None]:
        """The arguments as an object, or ({}, why not)."""
        text = self.arguments.strip() or "{}"
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            return {}, f"the arguments are not valid JSON ({exc.msg}); send a JSON object"
        if not isinstance(value, dict):
            return {}, "the arguments must be a JSON object"
        return value, None


@dataclass
class Reply:
    text: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: dict[str, Any] | None = None  # baton's usage shape, cost_usd included when known
    finish_reason: str | None = None
    model: str = ""


def parse_prices(value: Any) -> dict[str, dict[str, float]]:
    """The price table: the defaults, updated from a JSON text or a TOML table (checked as
    Settings checks BATON_PRICES)."""
    from baton.config import parse_prices as parse

    return with_defaults(parse(value))


def with_defaults(prices: Mapping[str, Price]) -> dict[str, dict[str, float]]:
    """The built-in price table updated with the configured prices."""
    table = {k: dict(v) for k, v in DEFAULT_PRICES.items()}
    table.update((model, price.to_dict()) for model, price in prices.items())
    return table


def price_of(prices: Mapping[str, Mapping[str, float]], model: str) -> Mapping[str, float] | None:
    """The prices of `model`: its own entry, else without a `vendor/` prefix, else the longest
    name it starts with (`gpt-4o-2024-08-06` costs what `gpt-4o` costs)."""
    for name in (model, model.rsplit("/", 1)[-1]):
        if name in prices:
            return prices[name]
    short = model.rsplit("/", 1)[-1]
    found = [k for k in prices if short.startswith(k + "-") or short.startswith(k + ":")]
    return prices[max(found, key=len)] if found else None


def cost_of(
    prices: Mapping[str, Mapping[str, float]], model: str, usage: Mapping[str, Any]
) -> float | None:
    price = price_of(prices, model)
    if price is None:
        return None
    base = price.get("input", 0.0)
    total = (
        int(usage.get("input_tokens") or 0) * base
        + int(usage.get("output_tokens") or 0) * price.get("output", 0.0)
        + int(usage.get("cache_read_tokens") or 0) * price.get("cache_read", base)
        + int(usage.get("cache_write_tokens") or 0) * price.get("cache_write", base)
    )
    return round(total / 1_000_000, 9)


@dataclass(frozen=True)
class ModelConfig:
    model: str
    base_url: str | None = None
    api_key: str | None = None
    prices: dict[str, dict[str, float]] = field(default_factory=lambda: dict(DEFAULT_PRICES))
    context_window: int = DEFAULT_CONTEXT_WINDOW
    retries: int = 6
    retry_delay: float = 1.0  # first backoff; doubles each attempt
    retry_max_wait: float = 60.0  # total seconds spent waiting before giving up

    @classmethod
    def from_settings(cls, settings: Settings, model: str | None = None) -> ModelConfig:
        """From Settings (flag > env > config file); NoModel when none is configured."""
        name = model or settings.model
        if not name:
            raise NoModel(NO_MODEL)
        base_url = settings.model_base_url
        api_key = settings.api_key
        if not api_key:
            if base_url is None:
                raise NoModel(
                    f"no API key for model {name}: set BATON_API_KEY (or OPENAI_API_KEY), or "
                    "BATON_BASE_URL for a local server that needs none"
                )
            api_key = "none"  # local servers (Ollama, llama.cpp…) want no key, the client one
        return cls(
            model=name,
            base_url=base_url,
            api_key=api_key,
            prices=with_defaults(settings.prices),
            context_window=settings.context_window,
            retries=settings.retries,
            retry_delay=settings.retry_delay,
            retry_max_wait=settings.retry_max_wait,
        )


def usage_of(raw: Any) -> dict[str, Any] | None:
    """baton's usage from the endpoint's: input_tokens are the uncached prompt tokens."""
    if raw is None:
        return None
    prompt = int(getattr(raw, "prompt_tokens", 0) or 0)
    details = getattr(raw, "prompt_tokens_details", None)
    cached = int(getattr(details, "cached_tokens", 0) or 0) if details is not None else 0
    usage: dict[str, Any] = {
        "input_tokens": max(prompt - cached, 0),
        "output_tokens": int(getattr(raw, "completion_tokens", 0) or 0),
    }
    if cached:
        usage["cache_read_tokens"] = cached
    extra = getattr(raw, "model_extra", None) or {}
    cost = extra.get("cost")  # OpenRouter reports what it charged
    if isinstance(cost, int | float) and not isinstance(cost, bool) and cost >= 0:
        usage["cost_usd"] = float(cost)
    return usage


class Provider:
    """One model at one endpoint. `complete` returns the whole reply; text is passed to
    `on_text` as it streams in."""

    def __init__(
        self,
        config: ModelConfig,
        *,
        sleep: Callable[[float], None] = time.sleep,
        notice: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self.sleep = sleep
        self.notice = notice or (lambda text: None)
        self._client: Any = None

    @property
    def model(self) -> str:
        return self.config.model

    @property
    def where(self) -> str:
        return (self.config.base_url or "https://api.openai.com/v1").rstrip("/")

    def client(self) -> Any:
        if self._client is None:
            import openai

            self._client = openai.OpenAI(
                api_key=self.config.api_key,
                base_url=self.config.base_url,
                max_retries=0,  # retries are ours: configurable, capped, and reported
                timeout=600.0,
            )
        return self._client

    def cost(self, usage: Mapping[str, Any]) -> float | None:
        return cost_of(self.config.prices, self.config.model, usage)

    def complete(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        *,
        stream: bool = True,
        on_text: Callable[[str], None] | None = None,
        on_reasoning: Callable[[str], None] | None = None,
        cancel: Cancel | None = None,
    ) -> Reply:
        import openai

        waited = 0.0
        attempt = 0
        while True:
            state = _Progress()
            try:
                return self._once(messages, tools, stream, on_text, on_reasoning, cancel, state)
            except (Interrupted, KeyboardInterrupt, ModelError):
                raise
            except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
                raise ModelError(
                    f"the model endpoint {self.where} refused the API key "
                    f"({exc.status_code}): check BATON_API_KEY (or OPENAI_API_KEY)"
                ) from None
            except (
                openai.RateLimitError,
                openai.InternalServerError,
                openai.APIConnectionError,
            ) as exc:
                if state.delivered:
                    raise ModelError(
                        f"the model's answer broke off: {_describe(exc, self.where)}"
                    ) from None
                delay = max(_retry_after(exc) or 0.0, self.config.retry_delay * 2**attempt)
                if attempt >= self.config.retries or waited + delay > self.config.retry_max_wait:
                    tries = attempt + 1
                    raise ModelError(
                        f"{_describe(exc, self.where)}, {tries} attempt(s) over {waited:.0f}s; "
                        "try again later"
                    ) from None
                self.notice(f"{_describe(exc, self.where)}; retrying in {delay:.1f}s")
                self.sleep(delay)
                waited += delay
                attempt += 1
            except openai.APIStatusError as exc:
                raise ModelError(_describe(exc, self.where, self.config.model)) from None
            except openai.OpenAIError as exc:
                raise ModelError(f"the model endpoint {self.where} failed: {exc}") from None

    def _once(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        stream: bool,
        on_text: Callable[[str], None] | None,
        on_reasoning: Callable[[str], None] | None,
        cancel: Cancel | None,
        state: _Progress,
    ) -> Reply:
        kwargs: dict[str, Any] = {"model": self.config.model, "messages": messages}
        if tools:
            kwargs["tools"] = tools
        reply = Reply(model=self.config.model)
        if not stream:
            response = self.client().chat.completions.create(**kwargs)
            if cancel is not None:
                cancel.check()
            choice = response.choices[0] if response.choices else None
            message = choice.message if choice is not None else None
            reply.text = (message.content or "") if message is not None else ""
            reply.reasoning = _reasoning(message) if message is not None else ""
            for call in (message.tool_calls or []) if message is not None else []:
                function = getattr(call, "function", None)
                reply.tool_calls.append(
                    ToolCall(
                        call.id or _call_id(),
                        getattr(function, "name", "") or "",
                        getattr(function, "arguments", "") or "",
                    )
                )
            reply.finish_reason = choice.finish_reason if choice is not None else None
            reply.usage = usage_of(response.usage)
            reply.model = response.model or reply.model
            if reply.text and on_text is not None:
                on_text(reply.text)
            return self._priced(reply)
        kwargs.update(stream=True, stream_options={"include_usage": True})
        response = self.client().chat.completions.create(**kwargs)
        calls: dict[Any, dict[str, str]] = {}
        try:
            for chunk in _chunks(response):
                if cancel is not None:
                    cancel.check()
                if getattr(chunk, "usage", None) is not None:
                    reply.usage = usage_of(chunk.usage)
                if getattr(chunk, "model", None):
                    reply.model = chunk.model
                for choice in chunk.choices or []:
                    delta = choice.delta
                    if choice.finish_reason:
                        reply.finish_reason = choice.finish_reason
                    if delta is None:
                        continue
                    thought = _reasoning(delta)
                    if thought:
                        reply.reasoning += thought
                        state.delivered = True
                        if on_reasoning is not None:
                            on_reasoning(thought)
                    if delta.content:
                        reply.text += delta.content
                        state.delivered = True
                        if on_text is not None:
                            on_text(delta.content)
                    for piece in delta.tool_calls or []:
                        _merge_call(calls, piece)
                        state.delivered = True
        finally:
            with contextlib.suppress(Exception):
                response.close()
        reply.tool_calls = [
            ToolCall(c["id"] or _call_id(), c["name"], c["arguments"])
            for c in calls.values()
            if c["name"]
        ]
        return self._priced(reply)

    def _priced(self, reply: Reply) -> Reply:
        if reply.usage is not None:
            cost = self.cost(reply.usage)
            if cost is not None:
                reply.usage["cost_usd"] = cost
        return reply


@dataclass
class _Progress:
    delivered: bool = False  # some of the answer was passed on: a retry would repeat it


def _chunks(response: Any) -> Iterator[Any]:
    """The stream's chunks; a connection that breaks mid-answer is a ModelError."""
    import openai

    iterator = iter(response)
    while True:
        try:
            chunk = next(iterator)
        except StopIteration:
            return
        except (openai.OpenAIError, Interrupted, KeyboardInterrupt):
            raise
        except Exception as exc:
            raise ModelError(f"the model's answer broke off: {type(exc).__name__}: {exc}") from None
        yield chunk


def _reasoning(delta: Any) -> str:
    """Reasoning text, as servers that send it name it (DeepSeek, vLLM, OpenRouter)."""
    for name in ("reasoning_content", "reasoning"):
        value = getattr(delta, name, None)
        if value is None:
            extra = getattr(delta, "model_extra", None) or {}
            value = extra.get(name)
        if isinstance(value, str) and value:
            return value
    return ""


def _merge_call(calls: dict[Any, dict[str, str]], piece: Any) -> None:
    index = piece.index if getattr(piece, "index", None) is not None else None
    if index is None:
        index = piece.id if piece.id else (list(calls)[-1] if calls else 0)
    slot = calls.setdefault(index, {"id": "", "name": "", "arguments": ""})
    if piece.id:
        slot["id"] = piece.id
    function = getattr(piece, "function", None)
    if function is not None:
        if function.name and function.name != slot["name"]:
            slot["name"] = function.name if not slot["name"] else slot["name"] + function.name
        if function.arguments:
            slot["arguments"] += function.arguments


def _call_id() -> str:
    return "call_" + uuid.uuid4().hex[:24]


def _retry_after(exc: Any) -> float | None:
    response = getattr(exc, "response", None)
    if response is None:
        return None
    headers = response.headers
    millis = headers.get("retry-after-ms")
    if millis:
        with contextlib.suppress(ValueError):
            return max(float(millis) / 1000, 0.0)
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def _describe(exc: Any, where: str, model: str | None = None) -> str:
    status = getattr(exc, "status_code", None)
    body = getattr(exc, "body", None)
    detail = ""
    if isinstance(body, dict):
        inner = body.get("error")
        detail = str((inner if isinstance(inner, dict) else body).get("message") or "")
    if status is None:
        return f"cannot reach the model endpoint {where}: {exc}"
    if status == 429:
        return f"the model endpoint {where} is rate limiting (429)"
    if status == 404 and model:
        return (
            f"the model endpoint {where} does not know model {model!r} (404): "
            "check BATON_MODEL and BATON_BASE_URL"
        )
    if status >= 500:
        return f"the model endpoint {where} failed ({status})"
    return f"the model endpoint {where} refused the request ({status})" + (
        f": {detail}" if detail else ""
    )
