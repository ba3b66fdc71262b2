"""Who may read the metrics service (issue 11, item 7): the access decision, pure."""

from bsm_metrics.access import allowed, bearer, matches

SERVICE, SCRAPE = "s" * 43, "p" * 43


def test_only_health_is_open_and_everything_else_needs_the_service_token():
    for path in ("/v1/orders/o-1/timeline", "/v1/sellers/s-1/response-times",
                 "/v1/sellers/s-1/quota", "/v1/reports/stats", "/metrics", "/openapi.json",
                 "/docs", "/no-such-path", "/health/", "/HEALTH", ""):
        assert not allowed(path, None, service_token=SERVICE, scrape_token=SCRAPE), path
        assert allowed(path, SERVICE, service_token=SERVICE, scrape_token=SCRAPE), path
    assert allowed("/health", None, service_token=SERVICE, scrape_token=None)


def test_the_scrape_token_opens_the_prometheus_page_and_nothing_else():
    assert allowed("/metrics", SCRAPE, service_token=SERVICE, scrape_token=SCRAPE)
    for path in ("/v1/orders/o-1/timeline", "/v1/reports/stats", "/metrics/", "/openapi.json"):
        assert not allowed(path, SCRAPE, service_token=SERVICE, scrape_token=SCRAPE), path
    assert not allowed("/metrics", "", service_token=SERVICE, scrape_token="")


def test_near_misses_of_the_token_are_refused():
    for wrong in (SERVICE[:-1], SERVICE + "s", SERVICE.upper(), " " + SERVICE, "", "s",
                  SERVICE + "\x00", SCRAPE):
        assert not matches(wrong, [SERVICE]), wrong
    assert matches(SERVICE, [SCRAPE, SERVICE])


def test_only_a_bearer_authorization_header_carries_a_token():
    assert bearer(f"Bearer {SERVICE}") == SERVICE
    assert bearer(f"bearer   {SERVICE} ") == SERVICE  # the scheme is case-insensitive
    for header in (None, "", "Bearer", "Bearer ", f"Basic {SERVICE}", SERVICE,
                   f"Token {SERVICE}"):
        assert bearer(header) is None, header
