"""The automation page's add-rule form on the real app in process (make_app): it makes the
same record as ``POST /api/v1/rules`` (one checker), each refusal lands beside its field with
the typed values kept, and only an admin may post it."""

from __future__ import annotations

import html
import re
from typing import Any

from tests.inprocess import AppFactory

CONFIG = """
[gpio]
backend = "simulated"

[location]
latitude = 52.52
longitude = 13.405
timezone = "Europe/Berlin"

[[pins]]
pin = 17
id = "fan"
mode = "pwm"

[[pins]]
pin = 27
id = "override"

[[pins]]
pin = 22
id = "porch"

[[sensors]]
id = "tank"
kind = "ds18b20"

[[schedules]]
id = "evening"
at = "19:00"
pins = ["porch"]

[[notifiers]]
id = "phone"
url = "http://127.0.0.1:9/hook"
"""

THERMOSTAT_FORM = {
    "id": "thermostat", "name": "Fan on when warm", "trigger": "sensor", "sensor": "tank",
    "reading": "temperature", "above": "28", "below": "27.5", "for": "2m",
    "between_start": "sunrise", "between_end": "23:00", "unless_pin": "override",
    "cooldown": "10m", "then_target": "pin:fan", "then_action": "level", "then_level": "0.6",
    "then_fade_ms": "5000", "otherwise_target": "pin:fan", "otherwise_action": "off",
}
THERMOSTAT_BODY = {
    "id": "thermostat", "name": "Fan on when warm",
    "when": {"sensor": "tank", "reading": "temperature", "above": 28.0, "below": 27.5},
    "for": "2m", "between": ["sunrise", "23:00"], "unless_pin": "override", "cooldown": "10m",
    "then": [{"pins": ["fan"], "action": "level", "level": 0.6, "fade_ms": 5000}],
    "otherwise": [{"pins": ["fan"], "action": "off"}],
}


def errors_of(page: str) -> dict[str, str]:
    """Each field-error span by its field (``add-rule-<field>-error``)."""
    return {m[1]: html.unescape(m[2]) for m in re.finditer(
        r'<span class="field-error" id="add-rule-([a-z_]+)-error">([^<]*)</span>', page)}


def comparable(rule: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in rule.items() if k not in ("id", "last_fired", "condition")}


def test_the_form_makes_the_same_rule_as_the_api(make_app: AppFactory) -> None:
    server = make_app(CONFIG)
    with server.client() as http:
        answer = http.post("/automation/rules", data=THERMOSTAT_FORM, follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"] == "/automation"
        made = http.get("/api/v1/rules/thermostat").json()
        posted = http.post("/api/v1/rules", json={**THERMOSTAT_BODY, "id": "twin"})
        assert posted.status_code == 201
        assert comparable(made) == comparable(posted.json())
        assert made["for_s"] == 120 and made["cooldown_s"] == 600
        assert made["between"] == ["sunrise", "23:00"] and made["unless_pin"] == "override"
        page = http.get("/automation").text
        assert 'id="rule-thermostat"' in page and "fan level 0.6" in page

        # The other triggers and a notification.
        for form in (
            {"id": "after-evening", "trigger": "schedule", "schedule": "evening",
             "then_target": "notify:phone", "then_message": "The porch is on",
             "then_title": "Porch"},
            {"id": "override-off", "trigger": "pin", "when_pin": "override", "to": "off",
             "then_target": "pin:porch", "then_action": "pulse", "then_ms": "300000"},
        ):
            answer = http.post("/automation/rules", data=form, follow_redirects=False)
            assert answer.status_code == 303, errors_of(answer.text)
        rules = {r["id"]: r for r in http.get("/api/v1/rules").json()["rules"]}
    assert rules["after-evening"]["when"] == {"schedule": "evening"}
    assert rules["after-evening"]["then"] == [
        {"notify": "phone", "message": "The porch is on", "title": "Porch"}]
    assert rules["override-off"]["when"] == {"pin": "override", "to": "off"}
    assert rules["override-off"]["then"] == [{"pins": ["porch"], "action": "pulse",
                                              "ms": 300000}]


def test_each_refused_value_is_shown_beside_its_field(make_app: AppFactory) -> None:
    server = make_app(CONFIG)
    form = {**THERMOSTAT_FORM, "id": "Bad Id", "below": "29", "for": "a while",
            "between_end": "", "cooldown": "later", "then_level": "1.5",
            "otherwise_action": "pulse", "otherwise_ms": "-3"}
    with server.client() as http:
        answer = http.post("/automation/rules", data=form)
        assert answer.status_code == 422
        errors = errors_of(answer.text)
        assert set(errors) == {"id", "below", "for", "between", "cooldown", "then_level",
                               "otherwise_ms"}, errors
        assert "must not be above 28.0" in errors["below"]
        assert "expected a duration" in errors["for"] and "expected two times" in errors["between"]
        assert 'id="add-rule-for" name="for" value="a while"' in answer.text  # kept as typed
        assert '<option value="tank" selected>' in answer.text
        assert http.get("/api/v1/rules").json()["rules"] == []
        # The same rule as JSON is refused by the API with the same words: one checker.
        body = {**THERMOSTAT_BODY, "id": "bad id", "for": "a while", "cooldown": "later",
                "when": {**THERMOSTAT_BODY["when"], "below": 29.0},
                "between": ["sunrise", ""],
                "then": [{"pins": ["fan"], "action": "level", "level": 1.5, "fade_ms": 5000}],
                "otherwise": [{"pins": ["fan"], "action": "pulse", "ms": -3}]}
        refused = http.post("/api/v1/rules", json=body)
        assert refused.status_code == 422
        for detail in errors.values():
            assert detail in refused.json()["detail"], (detail, refused.json()["detail"])

        unknown = http.post("/automation/rules", data={
            "id": "ghost", "trigger": "pin", "when_pin": "nosuch", "then_target": "pin:nosuch"})
        assert unknown.status_code == 422
        assert set(errors_of(unknown.text)) == {"when_pin", "then_target"}
        assert "'nosuch' is not a configured pin" in errors_of(unknown.text)["when_pin"]

        assert http.post("/automation/rules", data=THERMOSTAT_FORM,
                         follow_redirects=False).status_code == 303
        taken = http.post("/automation/rules", data=THERMOSTAT_FORM)
        assert taken.status_code == 409 and "exists already" in errors_of(taken.text)["id"]

    watcher = server.create_token("watcher", "read")
    with server.client(watcher) as http:
        assert "Add a rule" not in http.get("/automation").text
        refused = http.post("/automation/rules", data={**THERMOSTAT_FORM, "id": "sneaky"})
        assert refused.status_code == 403
