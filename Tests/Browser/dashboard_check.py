#!/usr/bin/env python3
"""Drives the socket2ser dashboard in headless Chromium against a running socket2ser.

    python3 Tests/Browser/dashboard_check.py --url http://127.0.0.1:PORT/#token=TOKEN \
        --screenshots DIR [--device PATH] [--echo-port N]

Expects at least one link that comes up, with a forward. With --echo-port (a port this end
listens on, with an echo service behind the link) it also opens two streams, sorts the streams
table by id and by bytes out from its headers, filters it by the first stream's port, and resets
that stream from the page (the other stays, then closes); with --device it starts a link (role S,
target 127.0.0.1:9) on that device from the page and stops it again.

Each check prints one line, "ok: ..." (or "skip: ..." when its argument is not given); the first
failure prints "FAIL: ...", saves failure.png in DIR and exits with status 1. Synchronisation is
by explicit waits only (WebDriverWait, socket timeouts), never by sleeping.

Needs: python3 with selenium 4, Chromium and chromedriver (found on PATH, or through
$CHROME_BIN and $CHROMEDRIVER).
"""

import argparse
import json
import os
import re
import shutil
import socket
import sys
import urllib.error
import urllib.request
from urllib.parse import parse_qs, quote, urlsplit, urlunsplit

from selenium import webdriver
from selenium.common.exceptions import (StaleElementReferenceException, TimeoutException,
                                        WebDriverException)
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

TOKEN_HELP = "needs the token"
SERIES_COLOURS = [(0x1F, 0x6F, 0xD1), (0xD9, 0x73, 0x1F)]  # --out, --in in app.css


class CheckFailed(Exception):
    pass


def ok(text):
    print(f"ok: {text}", flush=True)


def skip(text):
    print(f"skip: {text}", flush=True)


def find_binary(env, names):
    if os.environ.get(env):
        return os.environ[env]
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    raise CheckFailed(f"cannot find {' or '.join(names)} (set ${env})")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def can_connect(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def recv_exactly(sock, count):
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            break
        data += chunk
    return data


def echo_connection(port, payload):
    """Connects to the echo port, sends payload and reads it back; returns the open socket."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        sock.settimeout(10)
        sock.sendall(payload)
        echoed = recv_exactly(sock, len(payload))
        if len(echoed) < len(payload):
            raise CheckFailed(f"the echo service on port {port} closed the connection before echoing")
        if echoed != payload:
            raise CheckFailed(f"the echo service answered {echoed!r}")
        return sock
    except BaseException:
        sock.close()
        raise


BYTE_UNITS = {"": 1, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}


def parse_bytes(text):
    """The value app.js's fmtBytes shows as "27 B" or "1.23 KB"; None for "—"."""
    match = re.fullmatch(r"\s*([\d.]+)\s*([KMGT]?)B\s*", text or "")
    return float(match.group(1)) * BYTE_UNITS[match.group(2)] if match else None


def stream_key(stream_id):
    return (0, int(stream_id), "") if str(stream_id).isdigit() else (1, 0, str(stream_id))


class Dashboard:
    def __init__(self, args):
        self.args = args
        parts = urlsplit(args.url)
        self.base = urlunsplit((parts.scheme, parts.netloc, "/", "", ""))
        self.token = parse_qs(parts.fragment).get("token", [None])[0]
        options = Options()
        options.binary_location = find_binary("CHROME_BIN", ["chromium", "chromium-browser", "google-chrome"])
        for arg in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1400,1000", "--no-first-run", "--disable-extensions"]:
            options.add_argument(arg)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        service = Service(find_binary("CHROMEDRIVER", ["chromedriver"]))
        self.driver = webdriver.Chrome(options=options, service=service)
        self.driver.set_page_load_timeout(20)
        self.console = []
        self.link = None
        self.current = "setup"

    # ------------------------------------------------------------ helpers

    def wait(self, condition, timeout, message):
        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.2,
                                 ignored_exceptions=(StaleElementReferenceException,)).until(condition)
        except TimeoutException:
            raise CheckFailed(f"{message} (waited {timeout} s)") from None

    def js(self, script, *args):
        return self.driver.execute_script(script, *args)

    def screenshot(self, name, selector=None):
        os.makedirs(self.args.screenshots, exist_ok=True)
        if selector:
            self.js("const e = document.querySelector(arguments[0]); if (e) e.scrollIntoView({block: 'start'});", selector)
        else:
            self.js("window.scrollTo(0, 0);")
        path = os.path.join(self.args.screenshots, name)
        self.driver.save_screenshot(path)
        return path

    def collect_console(self):
        try:
            self.console.extend(self.driver.get_log("browser"))
        except WebDriverException:
            pass

    def message(self):
        return self.js("""
            const box = document.getElementById('message');
            if (!box) return null;
            return {shown: !box.hidden, kind: box.dataset.kind || '', status: box.dataset.status || '',
                    text: box.querySelector('.message-text').textContent};""")

    def card(self, link_id):
        return self.js("""
            const card = document.querySelector(`.link-card[data-link="${CSS.escape(arguments[0])}"]`);
            if (!card) return null;
            const field = (k) => { const e = card.querySelector(`[data-field="${k}"]`); return e ? e.textContent : null; };
            return {state: card.dataset.state, updated: card.dataset.updated, device: card.dataset.device,
                    role: card.dataset.role, since: card.querySelector('.link-since').textContent,
                    rtt: field('rtt'), forwards: field('forwards'), selected: card.classList.contains('selected'),
                    canStop: !card.querySelector('.link-stop').hidden};""", link_id)

    def cards(self):
        return self.js("""
            return [...document.querySelectorAll('#links .link-card')].map((c) => ({
                id: c.dataset.link, state: c.dataset.state, role: c.dataset.role, device: c.dataset.device,
                forwards: (c.querySelector('[data-field="forwards"]') || {}).textContent || ''}));""")

    def select_link(self, link_id):
        self.driver.find_element(By.CSS_SELECTOR, f'.link-card[data-link="{link_id}"] .link-id').click()
        self.wait(lambda d: (self.card(link_id) or {}).get("selected"), 5, f"link {link_id} does not get selected")

    def forward_rows(self):
        return self.js("""
            return [...document.querySelectorAll('#forwards li[data-kind]')].map((li) => ({
                kind: li.dataset.kind, spec: li.dataset.spec, text: li.querySelector('.fw-text').textContent}));""")

    def api(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base.rstrip("/") + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                text = response.read().decode()
                return response.status, (json.loads(text) if text else None)
        except urllib.error.HTTPError as error:
            text = error.read().decode()
            try:
                return error.code, json.loads(text)
            except ValueError:
                return error.code, text

    def submit_forward(self, kind, spec):
        Select(self.driver.find_element(By.ID, "forward-kind")).select_by_value(kind)
        field = self.driver.find_element(By.ID, "forward-spec")
        field.clear()
        field.send_keys(spec)
        self.driver.find_element(By.ID, "forward-add").click()

    # ------------------------------------------------------------ checks

    def check_load(self):
        self.driver.get(self.args.url)
        self.wait(lambda d: d.execute_script("return document.readyState") == "complete", 15, "the page does not load")
        title = self.driver.title
        if "socket2ser" not in title:
            raise CheckFailed(f"the title is {title!r}, without 'socket2ser'")
        self.wait(lambda d: d.find_element(By.ID, "live-status").get_attribute("data-state") == "connected", 15,
                  "the live channel (/api/live) does not connect")
        if self.token:
            stored = self.js("return sessionStorage.getItem('socket2ser-token');")
            if stored != self.token:
                raise CheckFailed("the token from the URL fragment is not kept in sessionStorage")
            if "token=" in self.driver.current_url:
                raise CheckFailed(f"the token stays in the address bar: {self.driver.current_url}")
        self.collect_console()
        severe = [e for e in self.console if e.get("level") == "SEVERE"]
        if severe:
            raise CheckFailed("console errors on load:\n  " + "\n  ".join(e.get("message", "") for e in severe))
        ok(f"page loads, title {title!r}, live channel connected, no console errors"
           + (", token moved from the fragment to sessionStorage" if self.token else ""))

    def check_link_up(self):
        def up_link(driver):
            ups = [c for c in self.cards() if c["state"] == "up"]
            if not ups:
                return None
            if self.args.echo_port:
                mine = [c for c in ups if re.search(rf":{self.args.echo_port}\b", c["forwards"])]
                if mine:
                    return mine[0]
            return sorted(ups, key=lambda c: c["role"] != "C")[0]
        link = self.wait(up_link, 20, "no link card reaches state 'up': cards are " + json.dumps(self.cards()))
        self.link = link["id"]
        self.select_link(self.link)
        first = self.card(self.link)
        later = self.wait(lambda d: (lambda c: c if c and c["updated"] and c["updated"] != first["updated"] else None)(self.card(self.link)),
                          5, f"link {self.link}'s card is not updated by a second snapshot")
        self.wait(lambda d: (lambda c: c and c["since"] != first["since"])(self.card(self.link)), 5,
                  f"link {self.link}'s 'for how long' stays at {first['since']!r}")
        rtt = self.wait(lambda d: (lambda c: c["rtt"] if c and re.search(r"\d", c["rtt"] or "") else None)(self.card(self.link)),
                        15, f"link {self.link} shows no RTT")
        now = self.card(self.link)
        ok(f"link {self.link} ({link['role']} on {link['device']}) is up, RTT {rtt}; its card follows the snapshots "
           f"({first['since']!r} -> {now['since']!r}, snapshot time {first['updated']} -> {later['updated']})")

    def check_chart(self):
        self.wait(lambda d: d.execute_script(
            "const c = document.getElementById('chart'); return c.dataset.link === arguments[0] && Number(c.dataset.samples) > 0;",
            self.link), 10, f"the chart shows no samples for {self.link}")
        result = self.js("""
            const c = document.getElementById('chart');
            const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            const colours = arguments[0];
            let series = 0;
            const distinct = new Set();
            for (let i = 0; i < data.length; i += 4) {
              const r = data[i], g = data[i + 1], b = data[i + 2];
              if (distinct.size < 64) distinct.add((r << 16) | (g << 8) | b);
              if (colours.some(([R, G, B]) => Math.abs(r - R) < 40 && Math.abs(g - G) < 40 && Math.abs(b - B) < 40)) series += 1;
            }
            return {width: c.width, height: c.height, series, distinct: distinct.size, samples: Number(c.dataset.samples)};""",
                         SERIES_COLOURS)
        if result["width"] == 0 or result["height"] == 0:
            raise CheckFailed(f"the chart canvas has no size: {result}")
        if result["distinct"] < 3 or result["series"] < 20:
            raise CheckFailed(f"the chart canvas looks blank: {result}")
        ok(f"chart drawn for {self.link}: {result['width']}x{result['height']} px, {result['samples']} samples, "
           f"{result['series']} pixels in the series' colours")

    def check_events(self):
        def link_up_entry(driver):
            return driver.execute_script("""
                for (const li of document.querySelectorAll('#events li')) {
                  const text = li.textContent.toLowerCase();
                  if (text.includes('link up') || li.dataset.kind === 'link-up')
                    return li.querySelector('.ev-msg').textContent;
                }
                return null;""")
        entry = self.wait(link_up_entry, 10, "the event log has no entry about a link going up")
        count = self.js("return document.querySelectorAll('#events li').length;")
        path = self.screenshot("overview.png")
        ok(f"event log has {count} entries, one says {entry!r} (screenshot {path})")

    def stream_rows(self):
        """The rows of #streams in the order shown: id, client, state, bytes out (text and value)."""
        rows = self.js("""
            return [...document.querySelectorAll('#streams tbody tr[data-stream]')].map((tr) => ({
                id: tr.dataset.stream, state: tr.dataset.state,
                client: tr.querySelector('[data-col="client"]').textContent,
                bytesOut: tr.querySelector('[data-col="bytesOut"]').textContent,
                shown: !tr.hidden && tr.getClientRects().length > 0}));""")
        for row in rows:
            row["bytesOutValue"] = parse_bytes(row["bytesOut"])
        return rows

    def shown_rows(self):
        return [r for r in self.stream_rows() if r["shown"]]

    def sort_header(self, key):
        return self.driver.find_element(By.CSS_SELECTOR, f'#streams th[data-sort="{key}"]')

    def aria_sorts(self):
        return self.js("""
            const out = {};
            for (const th of document.querySelectorAll('#streams th[data-sort]'))
              if (th.hasAttribute('aria-sort')) out[th.dataset.sort] = th.getAttribute('aria-sort');
            return out;""")

    def click_sort(self, key, label, value_of, want_dir=None):
        """Clicks the header th[data-sort=key]; waits until it alone carries aria-sort (want_dir, or
        whichever it shows) and the rows are in that order of value_of(row). Returns (dir, ids)."""
        before = self.aria_sorts().get(key)
        self.sort_header(key).click()

        def sorted_rows(driver):
            sorts = self.aria_sorts()
            direction = sorts.get(key)
            if list(sorts) != [key] or direction not in ("ascending", "descending"):
                return None
            if direction == before or (want_dir and direction != want_dir):
                return None
            rows = self.shown_rows()
            values = [(value_of(r), stream_key(r["id"])) for r in rows]
            if any(v[0] is None for v in values):
                return None
            expected = sorted(values, reverse=direction == "descending")
            return (direction, [r["id"] for r in rows]) if values == expected else None
        return self.wait(sorted_rows, 5, f"after a click on the {label} header the rows are not sorted by {label} "
                                         f"with aria-sort changed from {before!r}: aria-sort {self.aria_sorts()}, "
                                         f"rows {self.shown_rows()}")

    def check_sort_and_filter(self, first, second):
        """first, second: (stream id, local port, bytes sent) of two open streams."""
        (sid1, port1, _), (sid2, _, _) = first, second
        by_id = lambda r: stream_key(r["id"])
        by_bytes = lambda r: r["bytesOutValue"]
        # The id header: two clicks show both directions, whichever the page starts with.
        dir_a, ids_a = self.click_sort("id", "id", by_id)
        dir_b, ids_b = self.click_sort("id", "id", by_id,
                                       want_dir="ascending" if dir_a == "descending" else "descending")
        if ids_a != list(reversed(ids_b)) or len(ids_a) < 2:
            raise CheckFailed(f"sorting by id {dir_a} gives {ids_a}, {dir_b} gives {ids_b}: not reversed")
        asc_ids = ids_a if dir_a == "ascending" else ids_b
        # Bytes out: the first click picks the page's default direction, the second flips it.
        bytes_a = self.click_sort("bytesOut", "bytes out", by_bytes)
        bytes_b = self.click_sort("bytesOut", "bytes out", by_bytes,
                                  want_dir="ascending" if bytes_a[0] == "descending" else "descending")
        asc_bytes = bytes_a[1] if bytes_a[0] == "ascending" else bytes_b[1]
        if asc_bytes == asc_ids:
            raise CheckFailed(f"sorting by bytes out ascending gives the same order as by id ({asc_ids}), "
                              f"though the second stream carried fewer bytes")
        values = {r["id"]: r["bytesOut"] for r in self.shown_rows()}

        # The filter: the first socket's local port leaves its row alone.
        total = len(self.stream_rows())
        field = self.driver.find_element(By.ID, "stream-filter")
        text = str(port1)
        field.send_keys(text)

        def filtered(driver):
            rows = self.stream_rows()
            shown = [r["id"] for r in rows if r["shown"]]
            count = driver.find_element(By.ID, "streams-count").text
            return (rows, count) if shown == [sid1] else None
        rows, count = self.wait(filtered, 5, f"with {text!r} in #stream-filter the rows shown are "
                                             f"{[r['id'] for r in self.shown_rows()]}, not only stream {sid1}")
        how = "removed" if not any(r["id"] == sid2 for r in rows) else "hidden"
        if count != f"({1} of {total})":
            raise CheckFailed(f"with the filter #streams-count says {count!r}, not '(1 of {total})'")
        for _ in text:
            field.send_keys(Keys.BACKSPACE)

        def unfiltered(driver):
            if driver.find_element(By.ID, "stream-filter").get_attribute("value"):
                return None
            shown = {r["id"] for r in self.shown_rows()}
            count = driver.find_element(By.ID, "streams-count").text
            return count if {sid1, sid2} <= shown and len(shown) == total and count == f"({total})" else None
        count_after = self.wait(unfiltered, 5, f"after clearing #stream-filter the rows shown are "
                                               f"{[r['id'] for r in self.shown_rows()]}, not both streams")
        ok(f"streams table sorts and filters: id header {dir_a} {ids_a} -> {dir_b} {ids_b} (aria-sort follows); "
           f"bytes out {bytes_a[0]} {bytes_a[1]} -> {bytes_b[0]} {bytes_b[1]} (values {values}); "
           f"filter {text!r} leaves only stream {sid1} (the other row {how}, count {count}), "
           f"clearing it shows both again (count {count_after})")

    def check_stream(self):
        port = self.args.echo_port
        if not port:
            self.screenshot("streams.png", "#streams")
            skip("stream row and Reset (no --echo-port)")
            skip("streams table sorting and filter (no --echo-port)")
            return
        socks = []
        try:
            payload = b"socket2ser dashboard check\n"
            sock = echo_connection(port, payload)
            socks.append(sock)
            local_port = sock.getsockname()[1]

            def row(driver, local=local_port):
                return driver.execute_script("""
                    for (const tr of document.querySelectorAll('#streams tbody tr[data-stream]')) {
                      const client = tr.querySelector('[data-col="client"]').textContent;
                      if (client.endsWith(':' + arguments[0])) return {id: tr.dataset.stream, client,
                          state: tr.dataset.state, bytesOut: tr.querySelector('[data-col="bytesOut"]').textContent};
                    }
                    return null;""", str(local))
            stream = self.wait(row, 10, f"no row in #streams for the connection from 127.0.0.1:{local_port} "
                                        f"(link {self.link} selected)")
            sid = stream["id"]

            # A second stream, carrying fewer bytes, so that bytes out orders the rows against their ids.
            payload2 = b"2nd stream\n"
            sock2 = echo_connection(port, payload2)
            socks.append(sock2)
            local_port2 = sock2.getsockname()[1]
            stream2 = self.wait(lambda d: row(d, local_port2), 10,
                                f"no row in #streams for the second connection from 127.0.0.1:{local_port2}")
            sid2 = stream2["id"]
            if sid2 == sid:
                raise CheckFailed(f"both connections show as stream {sid}")

            def both_counted(driver):
                rows = {r["id"]: r for r in self.shown_rows()}
                if sid in rows and sid2 in rows and rows[sid]["bytesOutValue"] == len(payload) \
                        and rows[sid2]["bytesOutValue"] == len(payload2):
                    return rows
                return None
            self.wait(both_counted, 10, f"the rows do not show both streams ({sid} with {len(payload)} B out, {sid2} "
                                        f"with {len(payload2)} B out): {self.stream_rows()}")
            self.check_sort_and_filter((sid, local_port, len(payload)), (sid2, local_port2, len(payload2)))

            path = self.screenshot("streams.png", "#streams")
            self.driver.find_element(By.CSS_SELECTOR, f'#streams tbody tr[data-stream="{sid}"] button.stream-reset').click()
            self.wait(lambda d: not d.find_elements(By.CSS_SELECTOR, f'#streams tbody tr[data-stream="{sid}"]'), 10,
                      f"stream {sid}'s row is still there after Reset")
            try:
                data = sock.recv(4096)
                seen = "a close" if data == b"" else None
                if seen is None:
                    raise CheckFailed(f"after Reset the socket still receives data: {data!r}")
            except ConnectionResetError:
                seen = "a reset"
            except socket.timeout:
                raise CheckFailed("after Reset the socket sees neither a reset nor a close in 10 s") from None
            if not (row(self.driver, local_port2) or {}).get("id") == sid2:
                raise CheckFailed(f"after the Reset of stream {sid} the other stream {sid2} is no longer listed")
            sock2.sendall(payload2)
            if recv_exactly(sock2, len(payload2)) != payload2:
                raise CheckFailed(f"after the Reset of stream {sid} the other stream {sid2} no longer echoes")
            self.wait(lambda d: (row(d, local_port2) or {}).get("id") == sid2, 5,
                      f"stream {sid2}'s row went away after the Reset of stream {sid}")
            sock2.close()
            self.wait(lambda d: not d.find_elements(By.CSS_SELECTOR, f'#streams tbody tr[data-stream="{sid2}"]'), 10,
                      f"stream {sid2}'s row is still there after its socket was closed")
        finally:
            for s in socks:
                s.close()

        def closed_event(driver, stream_id=sid):
            return driver.execute_script("""
                // "stream #7 closed (...): 27 B read ..., 1.8 s": the number after '#' (or "stream "),
                // not any word 7 in the text.
                const id = arguments[0].replace(/[.*+?^${}()|[\\]\\\\]/g, '\\\\$&');
                const re = new RegExp('(#|\\\\bstream )' + id + '(?![\\\\w.])');
                for (const li of document.querySelectorAll('#events li[data-kind="stream-closed"]')) {
                  const text = li.querySelector('.ev-msg').textContent;
                  if (re.test(text)) return text;
                }
                return null;""", stream_id)
        event = self.wait(closed_event, 10, f"the event log shows no stream-closed event for stream {sid}")
        self.wait(lambda d: closed_event(d, sid2), 10, f"the event log shows no stream-closed event for stream {sid2}")
        ok(f"stream {sid} from {stream['client']} appeared ({stream['state']}, {stream['bytesOut']} out), "
           f"Reset removed its row, the socket saw {seen}, log says {event!r}; stream {sid2} from "
           f"{stream2['client']} stayed listed and echoing, and its row went when it closed (screenshot {path})")

    def check_forwards(self):
        port = free_port()
        spec = f"127.0.0.1:{port}:127.0.0.1:9"
        self.submit_forward("L", spec)

        def listed(driver):
            for fw in self.forward_rows():
                if fw["kind"] == "L" and re.search(rf"(^|:){port}:", fw["spec"]) and fw["spec"].endswith(":9"):
                    return fw
            return None
        forward = self.wait(listed, 10, f"-L {spec} does not appear in #forwards: {self.forward_rows()} "
                                        f"(message: {self.message()})")
        self.wait(lambda d: can_connect(port), 10, f"-L {spec} is listed but nothing listens on port {port}")
        button = self.driver.find_element(
            By.CSS_SELECTOR, f'#forwards li[data-kind="L"][data-spec="{forward["spec"]}"] button.forward-remove')
        button.click()
        self.wait(lambda d: listed(d) is None, 10, f"-L {forward['spec']} is still listed after Remove "
                                                    f"(message: {self.message()})")
        self.wait(lambda d: not can_connect(port), 10, f"port {port} still accepts connections after Remove")
        ok(f"forward {forward['text']!r} added from the form (listening on {port}) and removed again")

    def check_bad_forward(self):
        bad = "not-a-forward"
        expected = None
        if self.token:
            status, body = self.api("POST", f"/api/links/{quote(self.link, safe='')}/forwards", {"kind": "L", "spec": bad})
            if status != 400 or not isinstance(body, dict) or "error" not in body:
                raise CheckFailed(f"POST of a bad forward answered {status} {body!r}, not 400 with an error")
            expected = body["error"]
        self.submit_forward("L", bad)
        shown = self.wait(lambda d: (lambda m: m if m and m["shown"] and m["kind"] == "error" and m["text"] else None)(self.message()),
                          10, "a bad forward spec shows no error in #message")
        if expected and expected not in shown["text"]:
            raise CheckFailed(f"#message says {shown['text']!r}, not the server's {expected!r}")
        if shown["status"] != "400":
            raise CheckFailed(f"#message has status {shown['status']!r}, not 400: {shown['text']!r}")
        self.driver.find_element(By.ID, "message-close").click()
        ok(f"a bad forward spec shows the server's message: {shown['text']!r}")

    def check_ports_and_start(self):
        self.driver.find_element(By.ID, "port-refresh").click()
        options = self.wait(lambda d: d.execute_script("""
            const opts = [...document.querySelectorAll('#port-select option')].filter((o) => o.value);
            return opts.length ? opts.map((o) => ({path: o.value, kind: o.dataset.kind, text: o.textContent})) : null;"""),
                            10, "the port picker lists no serial device")
        kinds = sorted({o["kind"] for o in options})
        ptys = [o for o in options if o["kind"] in ("pty", "virtual-cable")]
        if not ptys:
            raise CheckFailed(f"the port picker lists no pseudo-terminal or cable end: {options}")
        ok(f"port picker lists {len(options)} devices (kinds {', '.join(kinds)}), e.g. {ptys[0]['text']!r}")

        device = self.args.device
        if device and any(o["path"] == device for o in options):
            Select(self.driver.find_element(By.ID, "port-select")).select_by_value(device)
            if self.driver.find_element(By.ID, "device").get_attribute("value") != device:
                raise CheckFailed("choosing a port does not fill the device path")
        elif device:
            field = self.driver.find_element(By.ID, "device")
            field.clear()
            field.send_keys(device)
        else:
            Select(self.driver.find_element(By.ID, "port-select")).select_by_value(ptys[0]["path"])
        self.driver.find_element(By.ID, "role-s").click()
        self.wait(lambda d: d.find_element(By.ID, "target").is_displayed(), 5, "role S does not show the target field")
        if self.driver.find_element(By.ID, "listen").is_displayed():
            raise CheckFailed("role S still shows C's listen field")
        target = self.driver.find_element(By.ID, "target")
        target.clear()
        target.send_keys("127.0.0.1:9")
        path = self.screenshot("start-form.png", "#start-form")
        if not device:
            skip(f"starting a link from the form (no --device; screenshot {path})")
            return

        before = {c["id"] for c in self.cards()}
        self.driver.find_element(By.ID, "start-button").click()

        def new_card(driver):
            message = self.message()
            if message and message["shown"] and message["kind"] == "error":
                raise CheckFailed(f"starting a link on {device} failed: {message['text']}")
            for c in self.cards():
                if c["id"] not in before and c["device"] == device:
                    return c
            return None
        card = self.wait(new_card, 10, f"no card appears for a link on {device}")
        link_id = card["id"]
        if card["role"] != "S":
            raise CheckFailed(f"the new link {link_id} has role {card['role']!r}, not S")
        self.wait(lambda d: (self.card(link_id) or {}).get("canStop"), 5, f"the new link {link_id} has no Stop button")
        state = self.card(link_id)["state"]
        self.driver.find_element(By.CSS_SELECTOR, f'.link-card[data-link="{link_id}"] button.link-stop').click()
        self.wait(lambda d: (lambda c: c is None or c["state"] == "stopped")(self.card(link_id)), 15,
                  f"link {link_id} is still there after Stop: {self.card(link_id)}")
        gone = "gone" if self.card(link_id) is None else "stopped"
        ok(f"started link {link_id} (S on {device}, target 127.0.0.1:9) from the form, state {state}; "
           f"Stop: it is {gone} (screenshot {path})")

    def check_no_token(self):
        main = self.driver.current_window_handle
        self.driver.switch_to.new_window("tab")
        try:
            self.driver.get(self.base)
            self.js("sessionStorage.clear();")
            self.driver.refresh()
            self.wait(lambda d: d.execute_script("return document.readyState") == "complete", 15,
                      "the page does not load without the token")
            if self.js("return sessionStorage.getItem('socket2ser-token');"):
                raise CheckFailed("a fresh tab without the fragment still has a token")

            def ready(driver):
                message = self.message()
                if message and message["shown"] and message["status"] == "401":
                    return "reads"
                if driver.find_elements(By.CSS_SELECTOR, "#links .link-card"):
                    return "cards"
                return None
            how = self.wait(ready, 15, "without the token the page shows neither links nor a 401 message")
            if how == "cards":
                self.wait(lambda d: not d.find_element(By.ID, "forward-add").get_attribute("disabled"), 5,
                          "the forward form stays disabled")
                port = free_port()
                spec = f"127.0.0.1:{port}:127.0.0.1:9"
                self.submit_forward("L", spec)
                message = self.wait(lambda d: (lambda m: m if m and m["shown"] and m["status"] else None)(self.message()),
                                    10, "a mutation without the token shows no message")
                if message["status"] != "401":
                    if can_connect(port):
                        self.api("DELETE", f"/api/links/{quote(self.link, safe='')}/forwards?kind=L&spec={quote(spec)}")
                    raise CheckFailed(f"a mutation without the token got {message['status']}: {message['text']!r}")
            else:
                message = self.message()
            if TOKEN_HELP not in message["text"]:
                raise CheckFailed(f"the 401 message does not tell the user about the token: {message['text']!r}")
            if not self.driver.find_element(By.ID, "token-state").is_displayed():
                raise CheckFailed("the page without a token does not say it has none (#token-state)")
            self.collect_console()
        finally:
            self.driver.close()
            self.driver.switch_to.window(main)
        ok(f"without the token, {'a mutation' if how == 'cards' else 'reading'} shows: {message['text']!r}")

    def check_console(self):
        self.collect_console()
        expected = re.compile(r"the server responded with a status of (400|401)")
        severe = [e for e in self.console if e.get("level") == "SEVERE"]
        unexpected = [e for e in severe if not expected.search(e.get("message", ""))]
        if unexpected:
            raise CheckFailed("console errors during the run:\n  " + "\n  ".join(e.get("message", "") for e in unexpected))
        ok(f"no unexpected console errors during the run ({len(severe)} logged 400/401 responses were the checks' own)")

    CHECKS = [
        ("1 page", "check_load"), ("2 link up", "check_link_up"), ("3 chart", "check_chart"),
        ("4 event log", "check_events"), ("5 streams", "check_stream"), ("6 forwards", "check_forwards"),
        ("7 bad forward", "check_bad_forward"), ("8 ports and start", "check_ports_and_start"),
        ("9 no token", "check_no_token"), ("console", "check_console"),
    ]

    def run(self):
        for name, method in self.CHECKS:
            self.current = name
            getattr(self, method)()

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="the dashboard's URL, with #token=... as socket2ser printed it")
    parser.add_argument("--screenshots", required=True, help="directory for overview.png, streams.png, start-form.png")
    parser.add_argument("--device", help="a free serial device to start a link on from the page")
    parser.add_argument("--echo-port", type=int, help="a port this end listens on, with an echo service behind the link")
    args = parser.parse_args()
    os.makedirs(args.screenshots, exist_ok=True)

    dashboard = None
    try:
        dashboard = Dashboard(args)
        dashboard.run()
    except CheckFailed as failure:
        where = dashboard.current if dashboard else "setup"
        print(f"FAIL: check {where}: {failure}", flush=True)
        if dashboard:
            try:
                print(f"  screenshot: {dashboard.screenshot('failure.png')}", flush=True)
                dashboard.collect_console()
                for entry in dashboard.console:
                    print(f"  console {entry.get('level')}: {entry.get('message')}", flush=True)
            except WebDriverException:
                pass
        return 1
    except WebDriverException as error:
        where = dashboard.current if dashboard else "setup"
        print(f"FAIL: check {where}: the browser: {getattr(error, 'msg', None) or error}", flush=True)
        return 1
    finally:
        if dashboard:
            dashboard.driver.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
