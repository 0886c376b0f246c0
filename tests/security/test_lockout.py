"""Wrong tokens never lock out right ones (issue 12, item 10).

Behind a proxy or a NAT every user shares one address, so a limiter that refused a whole
address would let anyone lock everyone out. Here one client sends 500 wrong tokens while
another, from the same address (127.0.0.1), keeps switching pins with a valid token and
with a browser session, against a real server process.
"""

from __future__ import annotations

import threading
from collections import Counter

import httpx

from tests.security.conftest import Spawn, browser_session, make_tokens

WRONG = 500


def test_500_wrong_tokens_do_not_slow_a_valid_token_or_session(spawn: Spawn) -> None:
    server = spawn()  # the default limit: 10 failures per address per minute
    tokens = make_tokens(server, phone="control")
    session = browser_session(server, tokens["phone"])
    attacker: Counter[int] = Counter()
    user: Counter[int] = Counter()
    started = threading.Event()

    def guess() -> None:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            for n in range(WRONG):
                wrong = {"Authorization": f"Bearer pp_{n:043d}"}
                attacker[http.get("/api/v1/pins", headers=wrong).status_code] += 1
                started.set()

    guesser = threading.Thread(target=guess)
    guesser.start()
    started.wait(10)
    with httpx.Client(base_url=server.url, timeout=10) as bearer, \
            httpx.Client(base_url=server.url, timeout=10) as browser:
        switches = 0
        while guesser.is_alive() or switches < 20:
            pin = (18, 23, 24)[switches % 3]
            if switches % 2:
                response = bearer.post(f"/api/v1/pins/{pin}/toggle",
                                       headers={"Authorization": f"Bearer {tokens['phone']}"})
            else:
                response = browser.post(f"/api/v1/pins/{pin}/toggle", headers={
                    **session.header, "X-CSRF-Token": session.csrf,
                    "Origin": server.url, "Sec-Fetch-Site": "same-origin"})
            user[response.status_code] += 1
            switches += 1
    guesser.join()
    assert sum(attacker.values()) == WRONG
    assert attacker[429] >= WRONG - 10, attacker  # the guesses were slowed...
    assert user == Counter({200: switches}), user  # ...and the user never was
    log = server.log()
    assert log.count("refused an unknown or revoked token") <= 10
    assert log.count("too many failed credential checks") == 1
