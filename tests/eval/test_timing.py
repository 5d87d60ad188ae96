from crossroads.eval.synthetic import make_routing_data
from crossroads.eval.timing import time_routers


def test_time_routers_reports_fit_and_one_prompt_latency() -> None:
    x, outcomes, _ = make_routing_data(n=200, n_models=3)
    rows = time_routers(x, outcomes, ["mean", "knn"], n=400, calls=20)
    assert [r["router"] for r in rows] == ["mean", "knn"]
    for row in rows:
        assert row["n"] == 400 and row["fit_s"] >= 0
        assert 0 < row["predict_ms"] <= row["predict_ms_p90"]
