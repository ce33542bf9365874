"""Explain page: the math and a chart."""

import pytest
from harness import open_page, wait_charts, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]


def test_explain_page_renders_math_and_a_chart(app_server, page):
    open_page(page, app_server, "explain")
    katex = page.locator(".katex")
    wait_until(page, lambda: katex.count() > 0, 30, "math rendered by KaTeX (.katex)")
    wait_charts(page, 1, timeout=60)
