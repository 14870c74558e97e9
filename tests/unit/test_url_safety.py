"""Webhook URL checks: http(s) only; metadata, link-local and (unless allowed) private refused."""

from __future__ import annotations

import ipaddress
import re

import pytest
from pydantic import ValidationError

from core.config import Settings
from core.errors import InvalidInput
from core.url_safety import address_refusal, check_webhook_url
from scheduler.webhooks.webhook_sender import WebhookSender

LOOPBACK = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/sluiceway",
        "http://hooks.example.com:8080/x?y=1",
        "https://8.8.8.8/hook",
        "http://[2606:4700:4700::1111]/hook",
    ],
)
def test_public_http_and_https_urls_are_accepted(url: str) -> None:
    assert check_webhook_url(f"  {url} ", allowed=[]) == url


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://hooks.example.com/x", "must be http:// or https://"),
        ("file:///etc/passwd", "must be http:// or https://"),
        ("gopher://example.com/", "must be http:// or https://"),
        ("hooks.example.com/x", "must be http:// or https://"),
        ("not a url", "spaces or control characters"),
        ("http://", "has no host"),
        ("http://example.com:99999/", "not a valid URL"),
        ("", "empty"),
        ("https://example.com/" + "a" * 2100, "the limit is 2048"),
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata address"),
        ("http://[fd00:ec2::254]/latest/meta-data/", "cloud metadata address"),
        ("http://[::ffff:169.254.169.254]/", "cloud metadata address"),
        ("http://metadata.google.internal/computeMetadata/v1/", "cloud metadata host"),
        ("http://169.254.10.1/hook", "link-local"),
        ("http://[fe80::1]/hook", "link-local"),
        ("http://127.0.0.1:8080/hook", "loopback"),
        ("http://localhost:8080/hook", "loopback"),
        ("http://[::1]/hook", "loopback"),
        ("http://10.1.2.3/hook", "private"),
        ("http://172.16.0.9/hook", "private"),
        ("http://192.168.1.20/hook", "private"),
        ("http://[fd12:3456::1]/hook", "private"),
        ("http://0.0.0.0/hook", "unspecified"),
        ("http://224.0.0.1/hook", "multicast"),
    ],
)
def test_bad_or_unsafe_urls_are_refused_naming_the_reason(url: str, reason: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_webhook_url(url, allowed=[])
    assert reason in caught.value.detail
    assert caught.value.status == 422


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080/hook", "http://localhost:9/hook", "http://[::1]:8080/"]
)
def test_loopback_is_accepted_once_allowed(url: str) -> None:
    assert check_webhook_url(url, allowed=LOOPBACK) == url


def test_an_allowed_private_range_opens_only_itself() -> None:
    allowed = [ipaddress.ip_network("10.20.0.0/16")]
    assert check_webhook_url("http://10.20.3.4/hook", allowed=allowed)
    with pytest.raises(InvalidInput, match="private"):
        check_webhook_url("http://10.21.3.4/hook", allowed=allowed)


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("169.254.169.254", "169.254.0.0/16"),
        ("fd00:ec2::254", "fd00::/8"),
        ("169.254.169.254", "0.0.0.0/0"),
    ],
)
def test_metadata_addresses_stay_refused_whatever_is_allowed(address: str, allowed: str) -> None:
    reason = address_refusal(ipaddress.ip_address(address), [ipaddress.ip_network(allowed)])
    assert reason == "a cloud metadata address"


def test_link_local_is_refused_by_default_and_accepted_when_listed() -> None:
    address = ipaddress.ip_address("169.254.7.7")
    assert address_refusal(address, []) == "a link-local address"
    assert address_refusal(address, [ipaddress.ip_network("169.254.7.0/24")]) is None


@pytest.mark.parametrize(
    "address",
    ["::ffff:10.0.0.1", "2002:a00:1::1", "64:ff9b::a9fe:a9fe"],
    ids=["mapped", "6to4", "nat64"],
)
def test_ipv6_forms_are_judged_by_the_ipv4_address_inside(address: str) -> None:
    assert address_refusal(ipaddress.ip_address(address), []) is not None


def test_allowed_networks_setting_is_parsed_and_bad_values_fail_naming_them() -> None:
    settings = Settings(webhook_allowed_networks="127.0.0.0/8, ::1/128")
    assert [str(n) for n in settings.webhook_networks] == ["127.0.0.0/8", "::1/128"]
    with pytest.raises(ValidationError, match=re.escape("'10.0.0.0/33' is not a CIDR")):
        Settings(webhook_allowed_networks="10.0.0.0/33")
    with pytest.raises(ValidationError, match="below webhook_backoff_base_s"):
        Settings(webhook_backoff_base_s=10, webhook_backoff_cap_s=5)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata address"),
        ("http://localhost:9/hook", "loopback"),
        ("http://[fe80::1]:80/", "link-local"),
    ],
)
def test_the_sender_refuses_before_connecting_and_does_not_retry(url: str, reason: str) -> None:
    """No connection is attempted: the unit tests' network guard would fail the test."""
    sender = WebhookSender(timeout_s=1, max_response_bytes=1024, allowed=[], max_connections=1)
    try:
        outcome = sender.send(url=url, body=b"{}", headers={})
    finally:
        sender.close()
    assert outcome.status_code is None and not outcome.delivered
    assert outcome.retryable is False
    assert outcome.error is not None and outcome.error.startswith("refused:")
    assert reason in outcome.error
