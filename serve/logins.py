"""Logins for a server started with `--auth user:pass`: the API's check of a request's credentials, the lab page's
login check, and the throttle both use so that a password cannot be guessed at speed."""

from __future__ import annotations

import base64
import hmac
import secrets
import threading
import time
from collections import deque
from typing import Callable

from fastapi import Request

LOGIN_ATTEMPTS = 5  # failed logins from one address within LOGIN_WINDOW before it is refused (429)...
LOGIN_WINDOW = 60.0  # seconds; ...until its oldest failure is this old: about 5 guesses a minute, not thousands


class LoginThrottle:
    """Failed logins per client address: after `attempts` failures within `window` seconds the address is refused
    until the oldest of them is `window` seconds old, which slows guessing to a few tries a minute. Behind a proxy
    every client shares the proxy's address. Thread-safe; `clock` is for tests."""

    def __init__(
        self, attempts: int = LOGIN_ATTEMPTS, window: float = LOGIN_WINDOW, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.attempts, self.window, self.clock = attempts, window, clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, client: str) -> float:
        """Seconds until `client` may try again; 0 when it may now."""
        with self._lock:
            failures = self._recent(client)
            return failures[0] + self.window - self.clock() if len(failures) >= self.attempts else 0.0

    def failed(self, client: str) -> None:
        with self._lock:
            self._recent(client).append(self.clock())
            if len(self._failures) > 10_000:  # many addresses (a scan): forget the ones with nothing recent
                for idle in [other for other in self._failures if not self._recent(other)]:
                    del self._failures[idle]

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)

    def _recent(self, client: str) -> deque[float]:
        failures = self._failures.setdefault(client, deque())
        while failures and failures[0] <= self.clock() - self.window:
            failures.popleft()
        return failures


def authorized(request: Request, auth: tuple[str, str] | None) -> bool:
    """With `--auth user:pass`, clients send `Authorization: Bearer user:pass` (an OpenAI client's api_key) or basic
    auth with the same pair."""
    if auth is None:
        return True
    expected = f"{auth[0]}:{auth[1]}"
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic":
        try:
            value = base64.b64decode(value).decode()
        except ValueError:
            return False
    elif scheme.lower() != "bearer":
        return False
    return secrets.compare_digest(value.encode(), expected.encode())


def lab_login(auth: tuple[str, str], throttle: LoginThrottle | None = None) -> Callable[[str, str], bool]:
    """The lab page's login check: the --auth pair, compared in constant time, and after 5 failed tries for a user
    name within a minute that name is refused, right password or not, until the minute has passed (Gradio's login
    form does not tell who is asking, so the throttle goes by the name tried; the API's goes by address)."""
    throttle = throttle or LoginThrottle()

    def check(username: str, password: str) -> bool:
        if throttle.retry_after(username) > 0:
            return False
        ok = hmac.compare_digest(username.encode(), auth[0].encode()) and hmac.compare_digest(
            password.encode(), auth[1].encode()
        )
        (throttle.succeeded if ok else throttle.failed)(username)
        return ok

    return check
