"""The provider against the fake model through the real `openai` client: streaming, tool
calls, usage and cost, retries on 429 and 5xx (Retry-After respected, total wait capped),
one-line errors, and the settings that configure it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from baton.agent.provider import (
    DEFAULT_PRICES,
    NO_MODEL,
    ModelConfig,
    ModelError,
    NoModel,
    Provider,
    cost_of,
    parse_prices,
    price_of,
)
from baton.config import Settings
from baton.core.errors import InvalidInput
from tests.fixtures.model import MODEL, PRICES, FakeModel, Step, call


def make(fake: FakeModel, **kw: object) -> tuple[Provider, list[float]]:
    waits: list[float] = []
    config = ModelConfig(
        model=MODEL,
        base_url=fake.url,
        api_key="test-key",
        prices=parse_prices(PRICES),
        retry_delay=float(kw.pop("retry_delay", 0.5)),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )
    return Provider(config, sleep=waits.append), waits


def test_streamed_text_arrives_in_pieces_with_usage_and_cost(fake_model: FakeModel) -> None:
    fake_model.reply("Hello there, walrus!", usage=(1000, 500, 200), chunk=5)
    provider, _ = make(fake_model)
    pieces: list[str] = []
    reply = provider.complete([{"role": "user", "content": "hi"}], on_text=pieces.append)
    assert pieces == ["Hello", " ther", "e, wa", "lrus!"]
    assert reply.text == "Hello there, walrus!" and reply.tool_calls == []
    assert reply.finish_reason == "stop" and reply.model == MODEL
    # 800 uncached input at $1, 200 cached at $0.5, 500 output at $2 per million tokens
    assert reply.usage == {
        "input_tokens": 800,
        "output_tokens": 500,
        "cache_read_tokens": 200,
        "cost_usd": 0.0019,
    }
    sent = fake_model.requests[0]
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert sent["model"] == MODEL and sent["messages"] == [{"role": "user", "content": "hi"}]
    assert fake_model.headers[0]["authorization"] == "Bearer test-key"


def test_tool_calls_are_assembled_from_streamed_pieces(fake_model: FakeModel) -> None:
    fake_model.reply(
        "Let me look.",
        call("call_1", "read_file", path="src/app.py", start_line=3),
        call("call_2", "list_files"),
        reasoning="I should read it",
    )
    provider, _ = make(fake_model)
    thoughts: list[str] = []
    reply = provider.complete(
        [{"role": "user", "content": "hi"}], [{"type": "function"}], on_reasoning=thoughts.append
    )
    assert [(c.id, c.name, c.parsed()) for c in reply.tool_calls] == [
        ("call_1", "read_file", ({"path": "src/app.py", "start_line": 3}, None)),
        ("call_2", "list_files", ({}, None)),
    ]
    assert reply.reasoning == "I should read it" and "".join(thoughts) == "I should read it"
    assert reply.finish_reason == "tool_calls"
    assert fake_model.requests[0]["tools"] == [{"type": "function"}]


def test_not_streamed(fake_model: FakeModel) -> None:
    fake_model.reply("plain", call("c1", "list_files"), usage=(10, 2, 0))
    provider, _ = make(fake_model)
    seen: list[str] = []
    reply = provider.complete([{"role": "user", "content": "x"}], stream=False, on_text=seen.append)
    assert (reply.text, seen, [c.name for c in reply.tool_calls]) == (
        "plain",
        ["plain"],
        ["list_files"],
    )
    assert reply.usage == {"input_tokens": 10, "output_tokens": 2, "cost_usd": 0.000014}
    assert "stream" not in fake_model.requests[0]


def test_429_then_success_waits_as_retry_after_says(fake_model: FakeModel) -> None:
    fake_model.fail(429, "slow down", **{"Retry-After": "2"}).fail(429).fail(503)
    fake_model.reply("at last")
    provider, waits = make(fake_model)
    notices: list[str] = []
    provider.notice = notices.append
    assert provider.complete([{"role": "user", "content": "x"}]).text == "at last"
    assert waits == [2.0, 1.0, 2.0]  # Retry-After, then 0.5 s doubled per attempt
    assert len(fake_model.requests) == 4
    assert notices[0] == (
        f"the model endpoint {fake_model.url} is rate limiting (429); retrying in 2.0s"
    )


def test_retries_stop_at_the_total_wait_cap_with_one_line(fake_model: FakeModel) -> None:
    fake_model.fail(429, **{"Retry-After": "30"}).fail(429, **{"Retry-After": "45"})
    provider, waits = make(fake_model, retry_max_wait=60.0)
    with pytest.raises(ModelError) as caught:
        provider.complete([{"role": "user", "content": "x"}])
    assert waits == [30.0]  # 30 + 45 would pass the 60 s cap: give up instead of waiting
    assert caught.value.message == (
        f"the model endpoint {fake_model.url} is rate limiting (429), 2 attempt(s) over 30s; "
        "try again later"
    )
    fake_model.add(*[Step(status=500, error="boom")] * 3)
    provider, waits = make(fake_model, retries=2)
    with pytest.raises(ModelError, match=r"failed \(500\), 3 attempt\(s\)"):
        provider.complete([{"role": "user", "content": "x"}])
    assert waits == [0.5, 1.0]


def test_auth_and_other_refusals_are_one_line(fake_model: FakeModel) -> None:
    fake_model.fail(401, "Incorrect API key provided")
    provider, waits = make(fake_model)
    with pytest.raises(ModelError) as caught:
        provider.complete([{"role": "user", "content": "x"}])
    assert caught.value.message == (
        f"the model endpoint {fake_model.url} refused the API key (401): check BATON_API_KEY "
        "(or OPENAI_API_KEY)"
    )
    assert waits == [] and len(fake_model.requests) == 1  # never retried
    fake_model.fail(404, "no such model")
    with pytest.raises(ModelError, match="does not know model 'fake-model' \\(404\\)"):
        provider.complete([{"role": "user", "content": "x"}])
    fake_model.fail(400, "context too long")
    with pytest.raises(ModelError) as bad:
        provider.complete([{"role": "user", "content": "x"}])
    assert bad.value.message.endswith("refused the request (400): context too long")


def test_an_unreachable_endpoint_is_retried_then_one_line() -> None:
    config = ModelConfig(MODEL, "http://127.0.0.1:9/v1", "k", retries=1, retry_delay=0.01)
    waits: list[float] = []
    with pytest.raises(ModelError) as caught:
        Provider(config, sleep=waits.append).complete([{"role": "user", "content": "x"}])
    assert caught.value.message.startswith("cannot reach the model endpoint http://127.0.0.1:9/v1")
    assert "\n" not in caught.value.message and waits == [0.01]


def test_price_table_lookup_and_cost() -> None:
    prices = parse_prices('{"my-model": {"input": 3, "output": 15, "cache_read": 0.3}}')
    assert prices["gpt-4o"] == DEFAULT_PRICES["gpt-4o"]
    assert price_of(prices, "openrouter/my-model") == prices["my-model"]
    assert price_of(prices, "gpt-4o-mini-2024-07-18") == DEFAULT_PRICES["gpt-4o-mini"]
    assert price_of(prices, "gpt-4o-2024-08-06") == DEFAULT_PRICES["gpt-4o"]
    assert price_of(prices, "llama3") is None
    usage = {"input_tokens": 1_000_000, "output_tokens": 100_000, "cache_read_tokens": 10_000}
    assert cost_of(prices, "my-model", usage) == 3 + 1.5 + 0.003
    assert cost_of(prices, "llama3", usage) is None
    for bad in ("[1]", '{"m": 3}', '{"m": {"input": -1}}', '{"m": {"inputs": 1}}', "nope"):
        with pytest.raises(InvalidInput, match="BATON_PRICES must be a JSON object"):
            parse_prices(bad)


def test_settings_env_config_file_and_flag(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with pytest.raises(NoModel) as none:
        ModelConfig.from_settings(Settings.load({"BATON_HOME": str(home)}))
    assert none.value.message == NO_MODEL and "\n" not in NO_MODEL
    assert none.value.exit_code == 2
    with pytest.raises(NoModel, match="no API key for model gpt-4o"):
        ModelConfig.from_settings(Settings.load({"BATON_HOME": str(home), "BATON_MODEL": "gpt-4o"}))
    env = {"BATON_HOME": str(home), "BATON_MODEL": "gpt-4o", "OPENAI_API_KEY": "sk-o"}
    assert ModelConfig.from_settings(Settings.load(env)).api_key == "sk-o"
    local = {"BATON_HOME": str(home), "BATON_MODEL": "llama3", "BATON_BASE_URL": "http://h/v1"}
    config = ModelConfig.from_settings(Settings.load(local), "qwen3")
    assert (config.model, config.base_url, config.api_key) == ("qwen3", "http://h/v1", "none")
    home.mkdir()
    (home / "config.toml").write_text(
        'model = "from-file"\nbase_url = "http://file/v1"\napi_key = "k"\n'
        "context_window = 32000\nretry_delay = 0.25\n"
        "[prices.from-file]\ninput = 1.5\noutput = 4\n"
    )
    config = ModelConfig.from_settings(Settings.load({"BATON_HOME": str(home)}))
    assert (config.model, config.base_url, config.api_key) == ("from-file", "http://file/v1", "k")
    assert (config.context_window, config.retry_delay) == (32000, 0.25)
    assert config.prices["from-file"] == {"input": 1.5, "output": 4.0}
    over = {"BATON_HOME": str(home), "BATON_MODEL": "env-model", "BATON_PRICES": json.dumps({})}
    assert ModelConfig.from_settings(Settings.load(over)).model == "env-model"
    with pytest.raises(InvalidInput, match="BATON_CONTEXT_WINDOW must be a number"):
        ModelConfig.from_settings(Settings.load({**over, "BATON_CONTEXT_WINDOW": "lots"}))
