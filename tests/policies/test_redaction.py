from __future__ import annotations

import inspect
import textwrap

import pytest

import policies.privacy
from policies.redaction import redact, shannon_entropy

# Built from parts so that no scanner mistakes this file for a leak.
AWS_ID = "AKIA" + "IOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYEXAMPLEKEY"
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEA7bq0fZ3vZ0PpVh2n9J8xYb3QkH1Zz7hT0cM9Xf3q\n"
    "pQ2wR8uTqX5mN1bV7cZ9yK3sD4fG6hJ8kL0aE2rT5yU7iO9pA==\n"
    "-----END RSA PRIVATE KEY-----"
)
CASES = [
    ("aws_access_key", f"aws_access_key_id = {AWS_ID}", AWS_ID),
    ("aws_secret_key", f"aws_secret_access_key={AWS_SECRET}", AWS_SECRET),
    ("private_key", f"key:\n{PEM}\nend", "MIIEowIBAAKCAQEA"),
    ("github_token", "use ghp_" + "x1Y2z3" * 6 + " here", "ghp_x1Y2"),
    ("github_token", "github_pat_" + "11ABCDEFG0" * 3, "github_pat_11"),
    ("github_token", "gho_" + "Ab1" * 12, "gho_Ab1"),
    ("slack_token", "hook xoxb-" + "123456789012-abcdefGHIJ", "xoxb-1234"),
    ("openai_key", "OPENAI=sk-" + "proj-Ab12Cd34Ef56Gh78Ij90Kl", "sk-proj"),
    ("openai_key", "key sk-" + "Ab12Cd34Ef56Gh78Ij90KlMn", "sk-Ab12"),
    ("anthropic_key", "sk-" + "ant-api03-Ab12Cd34Ef56Gh78Ij90", "sk-ant"),
    ("stripe_key", "sk_" + "live_4eC39HqLyjWDarjtT1zdp7dc", "sk_live"),
    ("stripe_key", "rk_" + "live_4eC39HqLyjWDarjtT1zdp7dc", "rk_live"),
    ("google_api_key", "AIza" + "SyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY", "AIzaSy"),
    ("jwt", "Bearer eyJ" + "hbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N",
     "eyJzdWIi"),
    ("env_assignment", "DB_PASSWORD=hunter2", "hunter2"),
    ("env_assignment", "export SERVICE_TOKEN=abc123def", "abc123def"),
    ("env_assignment", 'password = "hunter2"', "hunter2"),
    ("env_assignment", "client_secret: 'not-so-secret-value'", "not-so-secret-value"),
    ("env_assignment", '{"apiKey": "0123456789abcdef"}', "0123456789abcdef"),
    ("env_assignment", "db_password: hunter2", "hunter2"),
    ("env_assignment", 'API_KEY: str = "deadbeefcafe1234"', "deadbeefcafe1234"),
    ("high_entropy", "blob Zx9Qp2LmV7tR4wK8sN3bY6cJ1hF5gD0a in text", "Zx9Qp2Lm"),
]


@pytest.mark.parametrize(("kind", "text", "secret"), CASES, ids=[f"{k}-{i}" for i, (k, *_) in
                                                                  enumerate(CASES)])
def test_each_kind_is_redacted(kind: str, text: str, secret: str) -> None:
    result = redact(text)
    assert secret not in result.text
    assert f"[REDACTED:{kind}]" in result.text
    assert result.kinds == (kind,)
    assert result.count == 1


def test_several_secrets_counted_in_order_of_position() -> None:
    text = f"id={AWS_ID}\nDB_PASSWORD=hunter2\n{PEM}\n"
    result = redact(text)
    assert result.count == 3
    assert result.kinds == ("aws_access_key", "env_assignment", "private_key")
    assert "hunter2" not in result.text and "MIIE" not in result.text
    assert result.text.startswith("id=[REDACTED:aws_access_key]\nDB_PASSWORD=")


def test_name_of_an_assignment_is_kept() -> None:
    assert redact("GITHUB_TOKEN=ghp_" + "a" * 36).text == "GITHUB_TOKEN=[REDACTED:github_token]"


def test_unterminated_private_key_is_redacted_to_the_end() -> None:
    text = "here:\n" + PEM.split("-----END")[0]
    result = redact(text)
    assert result.text == "here:\n[REDACTED:private_key]"


def test_redacted_text_is_stable() -> None:
    once = redact(f"k={AWS_ID} DB_PASSWORD=x1")
    assert redact(once.text).count == 0


ORDINARY = [
    textwrap.dedent('''
        import os
        from dataclasses import dataclass

        MAX_TOKENS = 512
        API_KEY_ENV_VAR = "OPENAI_API_KEY"


        def calculate_total_price(items):
            """Sum the prices. Fixed in commit 3f2c9a1d8e7b6a5c4d3e2f1a0b9c8d7e6f5a4b3c."""
            token = get_token()
            password = os.environ["DB_PASSWORD"]
            api_key = os.getenv("API_KEY")
            request_id = "550e8400-e29b-41d4-a716-446655440000"
            colour = "#ff00aa"
            return sum(item.price for item in items)


        @dataclass
        class UserAccountRepositoryFactory2:
            access_token: str
            password: str | None = None
            pad_token = "[PAD]"
            max_new_tokens: int = 256
    '''),
    "const tokenizer = new AutoTokenizer('Qwen/Qwen2.5-Coder-0.5B-Instruct');\n",
    "sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n",
]


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_code_passes_through_unchanged(text: str) -> None:
    result = redact(text)
    assert result.text == text
    assert result.count == 0


def test_the_project_source_passes_through_unchanged() -> None:
    source = inspect.getsource(policies.privacy)
    assert redact(source).text == source


def test_entropy() -> None:
    assert shannon_entropy("aaaa") == 0.0
    assert shannon_entropy("abcd") == 2.0
