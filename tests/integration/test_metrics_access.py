"""The metrics service answers services only (issue 11, item 7): the read API, the Prometheus
page and the API description need the service credential; /health does not."""

from httpx import ASGITransport, AsyncClient

from bsm_metrics.app import create_app
from bsm_metrics.settings import MetricsSettings
from tests.factories import uid

PATHS = ("/v1/orders/o-{u}/timeline", "/v1/sellers/s-{u}/response-times",
         "/v1/sellers/s-{u}/quota", "/v1/reports/stats", "/metrics", "/openapi.json", "/docs",
         "/v1/orders/o%00x/timeline", "/nothing-here")


async def test_every_endpoint_but_health_refuses_a_caller_without_the_service_token(
    settings_for, env
):
    scrape = "scrape-" + uid() * 2
    app = create_app(settings_for(MetricsSettings, "metrics", scrape_token=scrape))
    token = env["BSM_METRICS_TOKEN"]
    async with app.router.lifespan_context(app):
        http = AsyncClient(transport=ASGITransport(app=app), base_url="http://metrics")
        u = uid()
        answers = {}
        for path in (p.format(u=u) for p in PATHS):
            answers[path] = {
                "none": await http.get(path),
                "wrong": await http.get(path, headers={"Authorization": f"Bearer {token}x"}),
                "basic": await http.get(path, headers={"Authorization": f"Basic {token}"}),
                "query": await http.get(path, params={"token": token}),
                "scrape": await http.get(path, headers={"Authorization": f"Bearer {scrape}"}),
                "service": await http.get(path, headers={"Authorization": f"Bearer {token}"}),
            }
        health = await http.get("/health")
    assert health.status_code == 200 and health.json()["service"] == "metrics"
    for path, by in answers.items():
        for how in ("none", "wrong", "basic", "query"):
            r = by[how]
            assert r.status_code == 401, (path, how, r.status_code)
            assert r.json()["error"] == "unauthenticated" and "BSM_METRICS_TOKEN" in r.json()[
                "detail"]
            assert r.headers["www-authenticate"].startswith("Bearer")
        assert by["service"].status_code != 401, path
        assert (by["scrape"].status_code == 200) == (path == "/metrics"), path
    u_paths = [p.format(u=u) for p in PATHS]
    assert answers[u_paths[4]]["service"].status_code == 200  # /metrics
    assert answers[u_paths[3]]["service"].status_code == 200  # report statistics
    assert answers[u_paths[0]]["service"].status_code == 404  # an order with no events
    assert answers[u_paths[7]]["service"].status_code == 422  # NUL: refused as before
