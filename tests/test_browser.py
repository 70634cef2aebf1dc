"""The explorer in a real headless Chromium with JavaScript switched off: catalog -> model -> release
-> lineage -> diff by clicking links, the verdicts shown, a revocation that appears without a restart,
and a screenshot of each page under test-output/browser/ (or $REGISTRY_TEST_OUTPUT/browser/)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests._browser import ServedExplorer, browser, require_browser, screenshot_dir, wait_for  # noqa: F401
from tests._explorer_fixtures import index_now, populate

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _needs_chromium():
    require_browser()


def _shot(driver, name: str) -> None:
    path = screenshot_dir() / f"{name}.png"
    driver.set_window_size(1280, 800)  # measure from a small window: the content is never shorter than it
    height = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]["height"]
    driver.set_window_size(1280, min(max(int(height) + 40, 800), 4000))
    assert driver.save_screenshot(str(path)), path


def _text(driver, css: str) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, css).text


def _click_link(driver, text: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.LINK_TEXT, text).click()


def test_catalog_model_release_lineage_diff_and_a_live_revocation(deployed, tmp_path, browser):  # noqa: F811
    from selenium.webdriver.common.by import By

    from registry.config import load_settings
    from registry.content.stores import open_store

    data = populate(deployed, tmp_path)
    index_now(deployed)
    # a store block altered after publishing: the page must show a rejection, not "verified"
    block = open_store(load_settings()).block_path(data.small.result.record.artifact_cid)
    raw = bytearray(block.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    block.write_bytes(bytes(raw))

    with ServedExplorer(data.explorer()) as served:
        browser.get(served.url + "/")
        rows = browser.find_elements(By.CSS_SELECTOR, "#catalog tbody tr")
        assert [r.find_element(By.CSS_SELECTOR, "a.model-link").text for r in rows] == ["acme/digits",
                                                                                         "acme/digits-small"]
        assert "up to date" in _text(browser, "#index-status")
        _shot(browser, "1-catalog")

        _click_link(browser, "acme/digits")
        assert browser.current_url.endswith("/models/acme/digits")
        assert "1.1.0" in _text(browser, "#releases") and "latest" in _text(browser, "#releases")
        _shot(browser, "2-model")

        _click_link(browser, "1.1.0")
        assert browser.current_url.endswith("/models/acme/digits/1.1.0")
        assert _text(browser, "#verification h2 .badge") == "VERIFIED"
        statuses = {row.get_attribute("id")[len("check-"):]: row.find_element(By.CSS_SELECTOR, ".badge").text
                    for row in browser.find_elements(By.CSS_SELECTOR, "table.checks tbody tr")}
        assert statuses == {"resolve": "PASS", "not_revoked": "PASS", "publisher_authorised": "PASS",
                            "signature": "PASS", "sha256": "PASS", "cid": "PASS", "provenance": "PASS",
                            "onnx": "PASS", "policy": "SKIP"}
        assert "structured_prune" in _text(browser, "#provenance") and "quantize" in _text(browser, "#provenance")
        _shot(browser, "3-release")

        _click_link(browser, "Lineage")
        assert browser.current_url.endswith("/models/acme/digits/1.1.0/lineage")
        nodes = browser.find_elements(By.CSS_SELECTOR, "#lineage-graph svg g.node")
        assert len(nodes) == 3
        _shot(browser, "4-lineage")
        small = browser.find_element(By.CSS_SELECTOR, 'svg a[href="/models/acme/digits-small/0.1.0"] rect')
        small.click()  # each node of the graph is a link
        assert wait_for(lambda: browser.current_url.endswith("/models/acme/digits-small/0.1.0"))
        assert _text(browser, "#verification h2 .badge") == "REJECTED"
        failed = [row.get_attribute("id") for row in browser.find_elements(By.CSS_SELECTOR, "tr.check-fail")]
        assert "check-sha256" in failed
        _shot(browser, "5-release-rejected")

        _click_link(browser, "Diff with parent acme/digits@1.1.0")
        assert "/diff?" in browser.current_url
        assert "do not match" in _text(browser, ".banner.warn")  # altered bytes are not diffed either

        browser.get(served.url + "/models/acme/digits/1.1.0")
        _click_link(browser, "Diff with parent acme/digits@1.0.0")
        assert "/diff?" in browser.current_url
        sides = _text(browser, "#diff-sides")
        assert "acme/digits@1.0.0" in sides and "acme/digits@1.1.0" in sides and "VERIFIED" in sides
        assert "quantize" in _text(browser, "#diff-provenance")
        assert "accuracy" in _text(browser, "#metric-deltas")
        _shot(browser, "6-diff")

        # revoke through the real CLI while the server runs; the page shows it without a restart
        done = subprocess.run([sys.executable, "-c", "from registry.cli import main; main()", "revoke",
                               "acme/digits@1.1.0", "--reason", "quantization broke class 7"],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        browser.get(served.url + "/models/acme/digits/1.1.0")
        assert wait_for(lambda: "quantization broke class 7" in browser.page_source), browser.page_source[:3000]
        assert "quantization broke class 7" in _text(browser, "#revoked-banner")
        assert _text(browser, "#verification h2 .badge") == "REVOKED"
        _shot(browser, "7-release-revoked")

        def model_shows_revocation() -> bool:
            browser.get(served.url + "/models/acme/digits")
            return "quantization broke class 7" in _text(browser, "#releases")

        assert wait_for(model_shows_revocation), "the index follower did not pick up the revocation"
        assert "REVOKED" in _text(browser, "#release-1-1-0")
        browser.get(served.url + "/")
        latest = browser.find_elements(By.CSS_SELECTOR, "#catalog tbody tr")[0].find_elements(By.TAG_NAME, "td")[1]
        assert latest.text == "1.0.0"  # latest is the newest release that is not revoked
        _shot(browser, "8-catalog-after-revocation")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from registry.cli import main; main()", *args],
                          capture_output=True, text=True, timeout=120)


def test_clicking_an_alias_follows_the_chain_as_it_moves_and_refuses_a_revoked_target(deployed, tmp_path,
                                                                                    browser):  # noqa: F811
    """D3: the model page lists aliases; a click lands on the release the chain resolves the alias
    to, follows a move made with `registry alias set` while the server runs (the rollback path), and
    once the target is revoked the click ends on a page that says the alias resolves to an error."""
    from selenium.webdriver.common.by import By

    data = populate(deployed, tmp_path)
    deployed.client.set_alias("acme/digits", "production", data.base.result.record.id, deployed.publisher)
    index_now(deployed)
    with ServedExplorer(data.explorer()) as served:
        browser.get(served.url + "/models/acme/digits")
        alias = browser.find_element(By.ID, "alias-production")
        assert "1.0.0" in _text(browser, "#aliases")
        _shot(browser, "9-model-with-alias")
        alias.click()
        assert wait_for(lambda: browser.current_url.endswith("/models/acme/digits/1.0.0"))
        assert _text(browser, "#verification h2 .badge") == "VERIFIED"

        moved = _cli("alias", "set", "acme/digits", "production", "1.1.0")
        assert moved.returncode == 0, moved.stderr
        browser.get(served.url + "/models/acme/digits")
        browser.find_element(By.ID, "alias-production").click()  # the chain answers, not the index
        assert wait_for(lambda: browser.current_url.endswith("/models/acme/digits/1.1.0"))

        revoked = _cli("revoke", "acme/digits@1.1.0", "--reason", "int8 drift")
        assert revoked.returncode == 0, revoked.stderr
        browser.get(served.url + "/models/acme/digits")
        browser.find_element(By.ID, "alias-production").click()
        assert wait_for(lambda: "Resolves to an error" in browser.page_source)
        assert browser.current_url.endswith("/models/acme/digits/production")  # no redirect to the revoked bytes
        assert "int8 drift" in _text(browser, ".error-message")
        _shot(browser, "10-alias-resolves-to-an-error")

        _click_link(browser, "What it points at, and its history")
        assert browser.current_url.endswith("/models/acme/digits/@production")
        assert "RESOLVES TO AN ERROR" in _text(browser, "#alias-answer")

        def history_has_both_moves() -> bool:
            browser.refresh()
            rows = browser.find_elements(By.CSS_SELECTOR, "#alias-history tbody tr")
            return [r.find_elements(By.TAG_NAME, "td")[3].text for r in rows] == ["1.1.0", "1.0.0"]

        assert wait_for(history_has_both_moves), _text(browser, "#alias-history")
        assert "REVOKED" in _text(browser, "#alias-history tbody tr:first-child")
        _shot(browser, "11-alias-history")

        _click_link(browser, "acme")  # the crumbs lead to the namespace page
        assert browser.current_url.endswith("/models/acme")
        assert deployed.publisher.address[:8] in _text(browser, "#namespace-owner")
        assert "acme/digits-small" in _text(browser, "#namespace-models")
        _shot(browser, "12-namespace")


def _plot(path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 3), dpi=80)
    ax.plot([235, 120, 80], [0.97, 0.95, 0.94], marker="o")
    ax.set_xlabel("size (bytes)")
    ax.set_ylabel("accuracy")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def test_a_card_drafted_edited_and_published_shows_with_its_plot_and_cross_model_lineage(deployed, tmp_path,
                                                                                           browser):  # noqa: F811
    """The card path end to end: `registry card draft --report` pins the plot, the publisher edits the
    draft, `registry publish --card` signs it; the model and release pages render it (the plot served
    from the store), and the lineage links the derived model to its base in another name."""
    import hashlib

    from selenium.webdriver.common.by import By

    from registry.provenance import statement, write_provenance
    from tests._verify_fixtures import tiny_onnx

    data = populate(deployed, tmp_path)
    model = tmp_path / "int8.onnx"
    model.write_bytes(tiny_onnx(50))
    prov = tmp_path / "provenance.json"
    write_provenance(statement(hashlib.sha256(model.read_bytes()).hexdigest(), "int8.onnx", {
        "base_model": {"sha256": data.base.result.record.artifact_sha256.hex(), "ref": "acme/digits@1.0.0"},
        "recipe": {"task": "classification"},
        "steps": [{"name": "quantize", "params": {"mode": "static"}, "metrics_before": {"accuracy": 0.97},
                   "metrics_after": {"accuracy": 0.962}}],
        "metrics": {"accuracy": 0.962}}), prov)
    report = tmp_path / "report"
    report.mkdir()
    _plot(report / "accuracy_vs_size.png")
    card = tmp_path / "CARD.md"
    drafted = _cli("card", "draft", "--provenance", str(prov), "--report", str(report), "--name", "acme/digits-int8",
                   "--version", "1.0.0", "-o", str(card))
    assert drafted.returncode == 0, drafted.stderr
    card.write_text(card.read_text().replace("license: other", "license: apache-2.0").replace(
        "Describe what the model is for and what it must not be used for.",
        "Digit recognition on 8x8 scans; not for handwriting in the wild."))
    published = _cli("publish", str(model), "--name", "acme/digits-int8", "--version", "1.0.0", "--provenance",
                     str(prov), "--card", str(card))
    assert published.returncode == 0, published.stderr
    index_now(deployed)

    with ServedExplorer(data.explorer()) as served:
        browser.get(served.url + "/models/acme/digits-int8")
        assert "apache-2.0" in _text(browser, "#card") and "not for handwriting" in _text(browser, "#card")
        _shot(browser, "13-model-with-card")

        _click_link(browser, "1.0.0")
        assert _text(browser, "#verification h2 .badge") == "VERIFIED"
        assert "model card matches" in _text(browser, "#check-provenance")
        plot = browser.find_element(By.CSS_SELECTOR, ".plots img")
        assert wait_for(lambda: int(plot.get_attribute("naturalWidth") or 0) > 0), "the plot did not load"
        _shot(browser, "14-release-with-card-and-plot")

        _click_link(browser, "Lineage")
        edges = browser.find_elements(By.CSS_SELECTOR, "#lineage-graph svg line.edge.base_model")
        assert len(edges) == 1 and "quantized" in _text(browser, "#lineage-graph")
        _shot(browser, "15-lineage-across-models")
        browser.find_element(By.CSS_SELECTOR, 'svg a[href="/models/acme/digits/1.0.0"] rect').click()
        assert wait_for(lambda: browser.current_url.endswith("/models/acme/digits/1.0.0"))
