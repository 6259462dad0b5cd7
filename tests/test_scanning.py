"""The secret scanner on a generated corpus (tests/fixtures/secrets_corpus.py): every planted
kind is found and redacted whole, clean coding sessions give no finding, and the cases of
issue 12 (an AWS secret key after its name, a 99-character Stripe key, a secret as a JSON key,
GIT_AUTHOR_NAME taken for a secret)."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest

import baton.scanning
from baton.core.redaction import redact_value, strings_in
from baton.scanning import SecretScanner, is_secret_name, secret_env_values
from baton.service import Service
from baton.store.blobs import MemoryBlobStore
from baton.store.memory import MemoryStore
from tests.fixtures import secrets_corpus as corpus
from tests.helpers import text_message, tool_turn

ALNUM = corpus.ALNUM


def left_of(secret: str, published: str) -> list[str]:
    """Any 12 characters of `secret` still in `published` (the whole secret if shorter)."""
    width = min(12, len(secret))
    return [
        secret[i : i + width]
        for i in range(len(secret) - width + 1)
        if secret[i : i + width] in published
    ]


PLANTED = corpus.planted()


@pytest.mark.parametrize("make", corpus.KINDS, ids=lambda make: make.__name__)
def test_every_planted_kind_is_found_and_redacted_whole(
    make: Callable[[random.Random], corpus.Snippet],
) -> None:
    scanner = SecretScanner({})
    samples = [s for s in PLANTED if s.name.startswith(f"{make.__name__}/")]
    assert len(samples) == 6
    for sample in samples:
        found = scanner.find(sample.messages)
        published = "\n".join(strings_in(redact_value(sample.messages, found)))
        for planted in sample.planted:
            assert left_of(planted.secret, published) == [], sample.name
        assert "[REDACTED:" in published


def test_the_corpus_is_large_and_the_same_every_time() -> None:
    assert len(PLANTED) == 6 * len(corpus.KINDS) == 174
    assert sum(len(s.planted) for s in PLANTED) == 228
    again = corpus.planted()
    assert [s.planted for s in again] == [s.planted for s in PLANTED]
    # the tool outputs over 64 KiB carry their secret in the middle
    big = [s for s in PLANTED if "/big/" in s.name]
    assert all(len(s.messages[2]["parts"][0]["output"]) > 64 * 1024 for s in big)


@pytest.mark.parametrize("sample", corpus.clean(), ids=lambda s: s.name)
def test_clean_sessions_have_no_findings(sample: corpus.Sample) -> None:
    assert SecretScanner(corpus.CLEAN_ENV).find(sample.messages) == {}


def test_git_log_with_the_git_author_environment_is_not_a_secret() -> None:
    env = {"GIT_AUTHOR_NAME": "Ada Lovelace", "GIT_AUTHOR_EMAIL": "ada@example.com"}
    service = Service(MemoryStore(), MemoryBlobStore(), scanner=SecretScanner(env))
    owner = service.account("ada").id
    session = service.create(owner, title="release")
    log = corpus.clean_git_log(random.Random(1)) + "\n" + corpus.clean_git_env(random.Random(2))
    service.append(owner, session.id, [text_message("tool", log)])
    share = service.share(owner, session.id)
    assert share.redacted == []
    assert service.share_messages(share.id)[-1].parts[0]["text"] == log


def test_secret_names_are_whole_words_of_the_variable_name() -> None:
    for name in ("MY_SERVICE_TOKEN", "AWS_SECRET_ACCESS_KEY", "DB_PASSWORD", "GH_PAT", "apiKey"):
        assert is_secret_name(name), name
    for name in (
        "GIT_AUTHOR_NAME",
        "GIT_AUTHOR_EMAIL",
        "AUTHOR",
        "SSH_AUTH_SOCK",
        "XAUTHORITY",
        "KEYBOARD_LAYOUT",
        "PASSWORD_STORE_DIR",
        "TOKENIZERS_PARALLELISM",
    ):
        assert not is_secret_name(name), name
    assert secret_env_values(corpus.CLEAN_ENV) == {}
    assert secret_env_values({"NPM_TOKEN": "npm-token-value", "GH_TOKEN": "short"}) == {
        "npm-token-value": "environment variable NPM_TOKEN"
    }


def test_an_aws_secret_key_after_its_name_is_found_quoted_or_not() -> None:
    # issue 12 (a): only the key id was found, and --redact published the secret key
    rnd = random.Random(5)
    key_id = (
        "AK" + "IA" + "".join(rnd.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(16))
    )
    secret = "".join(rnd.choice(ALNUM + "/+") for _ in range(40))
    scanner = SecretScanner({})
    for text in (
        f"[default]\naws_access_key_id = {key_id}\naws_secret_access_key = {secret}\n",
        f"export AWS_ACCESS_KEY_ID={key_id}\nexport AWS_SECRET_ACCESS_KEY={secret}\n",
        f'{{"AccessKeyId": "{key_id}", "SecretAccessKey": "{secret}"}}',
    ):
        assert scanner.find(text) == {
            key_id: "AWS Access Key",
            secret: "AWS Secret Access Key",
        }, text
        assert secret not in redact_value(text, scanner.find(text))


def test_a_long_stripe_key_is_found_whole() -> None:
    # issue 12 (c): a 99-character key was cut after 24 characters, the rest published
    rnd = random.Random(6)
    key = "sk_" + "live_" + "".join(rnd.choice(ALNUM) for _ in range(99))
    text = f"stripe.api_key = '{key}'"
    assert SecretScanner({}).find(text) == {key: "Stripe Access Key"}
    assert redact_value(text, SecretScanner({}).find(text)) == (
        "stripe.api_key = '[REDACTED:Stripe Access Key]'"
    )


def test_a_secret_used_as_an_object_key_is_redacted_in_the_key() -> None:
    # issue 12 (b): the scan reads keys, so the published copy must rewrite them too
    rnd = random.Random(7)
    key = "gh" + "p_" + "".join(rnd.choice(ALNUM) for _ in range(36))
    other = "gh" + "p_" + "".join(rnd.choice(ALNUM) for _ in range(36))
    value = {"tokens": {key: {"scopes": ["repo"]}, other: "read"}, "n": 1}
    found = SecretScanner({}).find(value)
    assert found == {key: "GitHub Token", other: "GitHub Token"}
    assert redact_value(value, found) == {
        "tokens": {
            "[REDACTED:GitHub Token]": {"scopes": ["repo"]},
            "[REDACTED:GitHub Token] (2)": "read",
        },
        "n": 1,
    }


def test_keyword_values_that_are_code_or_placeholders_are_not_secrets() -> None:
    scanner = SecretScanner({})
    for text in (
        "password = request.form['password']",
        "token = os.environ['GITHUB_TOKEN']",
        "SECRET_KEY = settings.SECRET_KEY",
        'password = "changeme"',
        "API_KEY=your-api-key-here",
        "max_tokens=4096000000",
        "sort_key = 'created_at_2'",
        "bypass = 'abc123def456'",
        "PASSWORD_DIR=/home/ada/.password-store",
        "//registry.npmjs.org/:_authToken=${NPM_TOKEN}",
        '{"NextToken": "aGVsbG8gd29ybGQgMTIzNDU2", "ClientRequestToken": "a8ca07e4-61ec-4399"}',
    ):
        assert scanner.find(text) == {}, text
    assert scanner.find("DB_PASSWORD=hunter2-Staple9") == {"hunter2-Staple9": "Secret Keyword"}


def test_a_short_password_in_a_url_is_redacted_with_its_url_part_only() -> None:
    text = "postgres://app:pw1@db:5432/x and pw1 elsewhere"
    found = SecretScanner({}).find(text)
    assert found == {"://app:pw1@": "Basic Auth Credentials"}
    assert redact_value(text, found) == (
        "postgres[REDACTED:Basic Auth Credentials]db:5432/x and pw1 elsewhere"
    )


def test_the_scanner_uses_no_private_module_of_re() -> None:
    assert "_parser" not in Path(baton.scanning.__file__).read_text()


def test_a_redacted_share_publishes_no_part_of_these_secrets() -> None:
    # issue 12 (a), (b), (c) end to end: what `baton share --redact` publishes
    rnd = random.Random(9)
    key_id = (
        "AK" + "IA" + "".join(rnd.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(16))
    )
    secret = "".join(rnd.choice(ALNUM + "/+") for _ in range(40))
    stripe = "sk_" + "live_" + "".join(rnd.choice(ALNUM) for _ in range(99))
    github = "gh" + "p_" + "".join(rnd.choice(ALNUM) for _ in range(36))
    service = Service(MemoryStore(), MemoryBlobStore(), scanner=SecretScanner({}))
    owner = service.account("ada").id
    session = service.create(owner, title="deploy")
    exports = f"export AWS_ACCESS_KEY_ID={key_id}\nexport AWS_SECRET_ACCESS_KEY={secret}\n"
    service.append(
        owner,
        session.id,
        [
            text_message("user", exports + f"STRIPE_KEY={stripe}"),
            *tool_turn("call_1", "write_config", {github: {"scopes": ["repo"]}}, "written"),
        ],
    )
    share = service.share(owner, session.id, mode="redact")
    public = service.share_messages(share.id)
    assert public[0].parts[0]["text"] == (
        "export AWS_ACCESS_KEY_ID=[REDACTED:AWS Access Key]\n"
        "export AWS_SECRET_ACCESS_KEY=[REDACTED:AWS Secret Access Key]\n"
        "STRIPE_KEY=[REDACTED:Stripe Access Key]"
    )
    assert public[1].parts[0]["input"] == {"[REDACTED:GitHub Token]": {"scopes": ["repo"]}}
    published = repr([m.to_dict() for m in public])
    for planted in (key_id, secret, stripe, github):
        assert left_of(planted, published) == []


def test_an_openai_project_key_in_lowercase_hex_is_found_whole() -> None:
    key = "sk-proj-" + "0123456789abcdef" * 2 + "a1b2c3d4"
    assert SecretScanner({}).find(f"deploy with {key}") == {key: "OpenAI Token"}
    assert SecretScanner({}).find("sk-learn-compatible-estimator-wrappers-and-more") == {}
