"""An audit of the page in real Chromium: layout at 1280 px, contrast, accessible names.

Contrast is computed here from the colours Chromium actually resolved (``getComputedStyle``
of each text element and of the nearest ancestor with a background), for the light and the
dark scheme, with WCAG 2's relative-luminance formula; the names are read through
Playwright's accessibility API (the accessibility tree Chromium builds), not from attributes.
"""

from __future__ import annotations

import re
from typing import Any

from tests.support import ServerFactory, log_in

CONFIG = """
[[pins]]
pin = 17
id = "garage"
name = "Garage door"
[[pins]]
pin = 18
name = "Porch light"
[[pins]]
pin = 23
name = "Water pump"
[[pins]]
pin = 27
id = "doorbell"
name = "Doorbell"
mode = "input"
"""
#: Every small text on the page whose colours the stylesheet sets.
TEXT = (".hd-key, .hd-legend, .state-text, .hd-name, .hd-state, .last-change, "
        ".timeline-scale span, .pins thead th, .pins tbody th, .pins td, footer, "
        "button.toggle, .banner, .live-status")

CONTRASTS = """(selector) => {
  const rgba = (text) => {
    const parts = text.match(/[\\d.]+/g).map(Number);
    return parts.length === 3 ? [...parts, 1] : parts;
  };
  const luminance = ([r, g, b]) => {
    const lin = (c) => {
      c /= 255;
      return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    };
    return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
  };
  const background = (el) => {
    for (; el; el = el.parentElement) {
      const colour = rgba(getComputedStyle(el).backgroundColor);
      if (colour[3] > 0) return colour;
    }
    return [255, 255, 255, 1];
  };
  const out = [];
  for (const el of document.querySelectorAll(selector)) {
    if (!el.textContent.trim() || !el.getClientRects().length) continue;
    const style = getComputedStyle(el);
    const back = background(el);
    const fore = rgba(style.color);
    // A translucent text colour is drawn over its background.
    const drawn = fore.slice(0, 3).map((c, i) => c * fore[3] + back[i] * (1 - fore[3]));
    const [hi, lo] = [luminance(drawn), luminance(back)].sort((a, b) => b - a);
    out.push({text: el.textContent.trim().slice(0, 30), cls: el.className.baseVal ?? el.className,
              ratio: (hi + 0.05) / (lo + 0.05), size: parseFloat(style.fontSize),
              bold: Number(style.fontWeight) >= 700, opacity: Number(style.opacity)});
  }
  return out;
}"""


def lines_of(page: Any, selector: str) -> list[int]:
    """How many lines of text each element matching ``selector`` is laid out on."""
    return list(page.evaluate("""(selector) => [...document.querySelectorAll(selector)].map(
        (el) => {
          const range = document.createRange();
          range.selectNodeContents(el);
          return new Set([...range.getClientRects()].map((r) => Math.round(r.bottom))).size;
        })""", selector))


def test_name_and_pin_cells_do_not_wrap_at_1280_px(make_server: ServerFactory,
                                                   page: Any) -> None:
    server = make_server(CONFIG)
    page.set_viewport_size({"width": 1280, "height": 800})
    log_in(page, server)
    with server.client() as http:  # a last-change line in every output row
        for pin in (17, 18, 23):
            assert http.post(f"/api/v1/pins/{pin}/on").is_success
    page.reload()
    assert page.locator(".last-change").count() >= 3
    for selector in (".pins tbody th", ".pins tbody td:nth-child(2)"):
        lines = lines_of(page, selector)
        assert lines and all(n == 1 for n in lines), (selector, lines)
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280


def test_every_small_text_meets_wcag_aa_contrast_in_light_and_dark(
        make_server: ServerFactory, page: Any) -> None:
    server = make_server(CONFIG)
    log_in(page, server)
    with server.client() as http:  # both looks of a pin: on (17) and off (18)
        assert http.post("/api/v1/pins/17/on").is_success
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        page.reload()
        page.locator("#pin-17.on").wait_for()
        found = page.evaluate(CONTRASTS, TEXT)
        keys = {item["text"] for item in found if "hd-key" in item["cls"]}
        assert {"on", "off", "3V3", "5V", "GND"} <= keys, (scheme, keys)
        assert any(item["text"] == "On" for item in found)
        failing = [item for item in found if item["opacity"] == 1 and item["ratio"] < (
            3.0 if item["size"] >= 24 or (item["bold"] and item["size"] >= 18.66) else 4.5)]
        assert not failing, (scheme, failing)


def test_the_diagrams_accessible_names_contain_their_visible_text(
        make_server: ServerFactory, page: Any) -> None:
    server = make_server(CONFIG)
    log_in(page, server)
    slots = page.locator(".hd-slot[data-pin]")
    assert slots.count() == 4
    for slot in slots.all():
        control = slot.locator(".hd-button, .hd-input")
        visible = " ".join(control.locator(".hd-name, .hd-state").all_inner_texts())
        assert re.fullmatch(r".+ (On|Off)", visible), visible
        role = "button" if control.evaluate("el => el.localName") == "button" else "status"
        # Through the accessibility tree: the control is found by a name that holds the
        # visible label, and says which header position it is.
        named = slot.get_by_role(role, name=visible)
        assert named.count() == 1, (role, visible)
        position = slot.get_attribute("data-position")
        assert slot.get_by_role(role, name=f"{visible} (header pin {position})",
                                exact=True).count() == 1
    # The name follows the state: after a switch the button is found by its new text.
    light = page.locator('.hd-slot[data-pin="18"]')
    light.get_by_role("button", name="Porch light Off").click()
    light.get_by_role("button", name="Porch light On").wait_for()
