"""Chromium (Debian's, through Playwright) on an emulated 2G link: 300 ms latency, 250 kbit/s down, 50 up."""

from __future__ import annotations

import io
import re
import secrets
import time
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]
TWO_G = {"offline": False, "latency": 300, "downloadThroughput": 250_000 // 8, "uploadThroughput": 50_000 // 8}
FAST = {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
# What the page hands to XMLHttpRequest.send: the form's bytes (upload.js) and the file's tus pieces
# (uploads.js), after shrinking (Chromium reports no body size for a FormData or Blob upload). Injected by
# Playwright, outside the page's CSP.
COUNT_SENT = """(() => { const send = XMLHttpRequest.prototype.send;
  XMLHttpRequest.prototype.send = function (body) {
    if (body instanceof FormData) { let n = 0;
      for (const [, v] of body.entries()) { n += v instanceof Blob ? v.size : String(v).length; }
      console.log("bench-sent:" + n); }
    else if (body instanceof Blob) { console.log("bench-sent:" + body.size); }
    return send.apply(this, arguments); }; })();"""
LOAD_MS = "(() => { const n = performance.getEntriesByType('navigation')[0]; return n.loadEventEnd; })()"


def phone_photo(path: Path, target_mb: float = 4.0) -> int:
    """A 12-megapixel photo of a paper receipt with sensor noise, saved as a ~4 MB JPEG."""
    w, h = 4032, 3024
    img = Image.new("RGB", (w, h), (214, 208, 196))
    draw = ImageDraw.Draw(img)
    draw.rectangle([900, 200, 3100, 2850], fill=(246, 244, 238))
    for i in range(60):
        y = 320 + i * 40
        draw.rectangle([1000, y, 1000 + (i * 379) % 1700 + 200, y + 14], fill=(40, 40, 48))
    draw.text((1000, 2780), secrets.token_hex(16), fill=(40, 40, 48))  # every photo different: no duplicate
    noise = Image.effect_noise((w, h), 28).convert("RGB")
    img = Image.blend(img, noise, 0.2).filter(ImageFilter.GaussianBlur(0.6))
    data = b""
    for quality in (97, 96, 95, 93, 90, 87, 84, 80, 75, 70):
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=quality)
        data = buf.getvalue()
        if len(data) <= target_mb * 1_000_000 * 1.05:
            break
    path.write_bytes(data)
    return len(data)


UPLOAD_CAP_S = 150


def upload(page, cdp, base: str, case_id: int, photo: Path, network: dict,
           cap_s: int) -> tuple[float | None, int, str]:
    """Fill in the receipt form, choose the photo, submit. Returns (seconds until the receipt page loaded,
    or None; bytes the browser sent after shrinking; what went wrong, if anything)."""
    cdp.send("Network.emulateNetworkConditions", FAST)  # filling in the form is not what is measured
    page.goto(f"{base}/cases/{case_id}/receipts/new", wait_until="load")
    page.select_option("select[name=budget_line_id]", index=1)
    page.fill("input[name=supplier]", "Phone photo supplier")
    page.fill("input[name=invoice_number]", f"PH-{time.time_ns()}")
    page.fill("input[name=invoice_date]", "2024-06-01")
    page.fill("input[name=amount]", "42.00")
    page.select_option("select[name=currency]", "EUR")
    page.fill("textarea[name=description]", "Tools, photographed with a phone")
    page.check("input[name=paid_directly]")
    page.set_input_files("input[name=files]", str(photo))
    cdp.send("Network.emulateNetworkConditions", network)
    bodies: list[int] = []
    answers: list[tuple[float, int]] = []

    def console(msg):
        if msg.text.startswith("bench-sent:"):
            bodies.append(int(msg.text.split(":")[1]))

    def response(resp):
        if resp.request.method == "POST" and "/receipts/new" in resp.url:
            answers.append((time.perf_counter() - t0, resp.status))

    page.on("console", console)
    page.on("response", response)
    t0 = time.perf_counter()
    page.click("form[data-upload] [type=submit]")
    took, problem = None, f"no answer within {cap_s} s"
    while time.perf_counter() - t0 < cap_s:
        if re.search(r"/receipts/\d+$", page.url):
            page.wait_for_load_state("load")
            took, problem = time.perf_counter() - t0, ""
            break
        if answers and answers[-1][1] >= 400:
            problem = f"HTTP {answers[-1][1]} after {answers[-1][0]:.0f} s"
            break
        page.wait_for_timeout(200)
    page.remove_listener("console", console)
    page.remove_listener("response", response)
    cdp.send("Network.emulateNetworkConditions", FAST)
    return took, sum(bodies), problem


def two_g(base: str, ua: str, email: str, password: str, case_id: int, out: Path) -> list[tuple[str, float, int]]:
    from playwright.sync_api import sync_playwright

    photo = out / "phone-photo.jpg"
    size = phone_photo(photo)
    figures = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(user_agent=ua, locale="en-GB", viewport={"width": 390, "height": 844})
        context.add_init_script(COUNT_SENT)
        page = context.new_page()
        page.set_default_timeout(180_000)
        cdp = context.new_cdp_session(page)
        cdp.send("Network.enable")
        cdp.send("Network.setCacheDisabled", {"cacheDisabled": False})
        cdp.send("Network.emulateNetworkConditions", TWO_G)
        page.goto(base + "/login", wait_until="load")
        figures.append(("2G: sign-in page usable (load event, empty cache)", page.evaluate(LOAD_MS) / 1000, 3))
        page.fill("input[name=email]", email)
        page.fill("input[name=password]", password)
        with page.expect_navigation(wait_until="load"):
            page.click("form [type=submit]:not(.secondary)")
        page.goto(f"{base}/cases/{case_id}", wait_until="load")
        figures.append(("2G: case page usable (load event, after signing in)", page.evaluate(LOAD_MS) / 1000, 3))

        # The same upload twice: on a fast link first (how many bytes the shrunk photo has, and that the form
        # works), then on 2G, which is measured. Two photos: the portal refuses the same file twice.
        first = out / "phone-photo-0.jpg"
        phone_photo(first)
        fast_sent = upload(page, cdp, base, case_id, first, FAST, 60)[1]
        took, sent, problem = upload(page, cdp, base, case_id, photo, TWO_G, UPLOAD_CAP_S)
        sent = sent or fast_sent
        estimate = TWO_G["latency"] / 1000 * 4 + sent / TWO_G["uploadThroughput"]
        label = (f"2G: upload a {size / 1e6:.1f} MB phone photo (the browser sends {sent / 1e3:.0f} KB after "
                 f"shrinking for a slow link; {fast_sent / 1e3:.0f} KB on a fast one), until the receipt page "
                 "has loaded")
        if took is None:
            figures.append((label + f" — FAILED: {problem}; the bytes alone need {estimate:.0f} s at 50 kbit/s",
                            float("inf"), 25))
        else:
            figures.append((label, took, 25))
        browser.close()
    return figures
