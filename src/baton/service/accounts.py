"""The account of local mode's owner: found by handle, or added (validated as every account
is, by `Accounts.add`) on first use."""

from __future__ import annotations

from baton.accounts import Accounts
from baton.core.errors import Conflict
from baton.core.models import Account
from baton.store.base import Store


def account(store: Store, accounts: Accounts, handle: str, display_name: str | None) -> Account:
    """The account with this handle, created on first use."""
    found = store.find_account(handle)
    if found:
        return found
    try:
        return accounts.add(handle, display_name)
    except Conflict:
        pass  # added since it was looked for
    except Exception:
        if store.find_account(handle) is None:  # another process created it first
            raise
    again = store.find_account(handle)
    if again is None:
        raise Conflict(f"the account {handle} could not be added", None)
    return again
