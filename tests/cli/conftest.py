"""Real git repositories for the CLI tests (the fixtures of tests/test_gitstate.py)."""

from tests.test_gitstate import dirty_repo, git_env, git_repo, origin  # noqa: F401
