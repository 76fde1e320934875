"""BASE_URL: e-mailed links lead to the address the shop is served on."""

from storefront.config import default_base_url, load_config


def test_base_url_follows_the_port_make_run_serves(monkeypatch, tmp_path):
    monkeypatch.delenv("BASE_URL", raising=False)
    monkeypatch.setenv("BIND", "127.0.0.1:5077")
    assert load_config(str(tmp_path))["BASE_URL"] == "http://127.0.0.1:5077"


def test_an_explicit_base_url_wins_over_the_bind_address(monkeypatch, tmp_path):
    monkeypatch.setenv("BASE_URL", "https://shop.example")
    monkeypatch.setenv("BIND", "127.0.0.1:5077")
    assert load_config(str(tmp_path))["BASE_URL"] == "https://shop.example"


def test_without_a_bind_address_links_use_the_embedded_default(monkeypatch, tmp_path):
    monkeypatch.delenv("BASE_URL", raising=False)
    monkeypatch.delenv("BIND", raising=False)
    assert load_config(str(tmp_path))["BASE_URL"] == "http://127.0.0.1:5000"


def test_a_wildcard_bind_address_links_to_the_loopback():
    assert default_base_url("0.0.0.0:8080") == "http://127.0.0.1:8080"
    assert default_base_url("unix:/run/shop.sock") == "http://127.0.0.1:5000"
