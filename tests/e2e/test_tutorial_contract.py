"""The tutorial's curl commands against a real ``pinpanel serve`` process, as JSON this time."""

from __future__ import annotations

from tests.support import JSON, ServerFactory


def test_list_and_toggle_exactly_as_the_tutorial(make_server: ServerFactory) -> None:
    server = make_server()
    with server.client() as http:
        listed = http.get("/api/list", headers=JSON)
        assert listed.status_code == 200
        assert listed.headers["content-type"].startswith("application/json")
        assert listed.json() == {"18": False, "23": False, "24": False}

        toggled = http.post("/api/toggle/18", headers=JSON)
        assert (toggled.status_code, toggled.json()) == (200, {"Success": True})
        assert http.get("/api/list", headers=JSON).json() == {"18": True, "23": False, "24": False}


def test_charset_parameter_still_counts_as_json(make_server: ServerFactory) -> None:
    server = make_server()
    with server.client() as http:
        headers = {"Content-Type": "application/json; charset=utf-8"}
        assert http.get("/api/list", headers=headers).status_code == 200
        assert http.post("/api/toggle/23", headers=headers).json() == {"Success": True}


def test_non_json_requests_get_the_tutorials_error(make_server: ServerFactory) -> None:
    server = make_server()
    with server.client() as http:
        for response in (http.get("/api/list"),
                         http.get("/api/list", headers={"Content-Type": "text/plain"}),
                         http.post("/api/toggle/18"),
                         http.post("/api/toggle/18", data={"pin": "18"})):
            assert response.status_code == 400
            assert response.json() == {"Error": "Only JSON requests accepted"}
        assert http.get("/api/list", headers=JSON).json()["18"] is False


def test_unknown_or_malformed_pins_get_the_tutorials_error(make_server: ServerFactory) -> None:
    server = make_server()
    with server.client() as http:
        for pin in ("4", "99", "abc", "18.0", "-1", "%20"):
            response = http.post(f"/api/toggle/{pin}", headers=JSON)
            assert response.status_code == 400, pin
            assert response.json() == {"Error": "Invalid Pin Number"}
        assert http.get("/api/list", headers=JSON).json() == {"18": False, "23": False, "24": False}


def test_form_post_toggles_and_redirects_to_the_page(make_server: ServerFactory) -> None:
    server = make_server()
    with server.client() as http:
        response = http.post("/toggle?pin=24")
        assert response.status_code == 303
        assert response.headers["location"].endswith("/")
        assert http.get("/api/list", headers=JSON).json()["24"] is True
        for bad in ("/toggle?pin=5", "/toggle?pin=x", "/toggle"):
            refused = http.post(bad)
            assert (refused.status_code, refused.json()) == (400, {"Error": "Invalid Pin Number"})


def test_get_never_toggles(make_server: ServerFactory) -> None:
    server = make_server()
    with server.client() as http:
        assert http.get("/toggle?pin=18").status_code == 405
        assert http.get("/api/toggle/18", headers=JSON).status_code == 405
        assert http.get("/api/list", headers=JSON).json()["18"] is False
