"""Python run under Pyodide in a Chromium tab of the demo page: for the benchmarks that time the
same source under CPython and in the browser."""

from __future__ import annotations


def run_in_page(code: str) -> str:
    """Run ``code``, whose last expression is a string, in a fresh headless tab of the demo page
    (the reference server on loopback serves it), and return that string."""
    from playwright.sync_api import sync_playwright

    from p2p_demo.harness import launch_chromium, quiet_page, require_loopback_namespace
    from p2p_server.server import ServerThread

    require_loopback_namespace()
    with ServerThread() as server, sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = quiet_page(browser, server.url)
            text: str = page.evaluate("(code) => p2pShim.pyodide.runPythonAsync(code)", code)
        finally:
            browser.close()
    return text
