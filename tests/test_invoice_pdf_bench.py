"""Smoke test of `orderloom bench invoice-pdf` at toy size (as tests/test_benchmarks.py does for the others): the
three kinds of fresh process run and report; no timing is asserted."""
import pytest

from devtools.bench import invoice_pdf as bench
from devtools.bench import orders as benchmarks


def test_invoice_pdf_benchmark_runs_every_variant():
    results = bench.run_invoice_pdf(renders=2, repeat=1, plain_renders=1)
    assert results["ok"] and all(results["checks"].values()), results["checks"]
    row = results["rounds"][0]
    for key in ("shipped_first_ms", "shipped_warm_ms", "shipped_warm_cpu_ms", "plain_first_ms", "plain_warm_ms",
                "floor_warm_ms", "ratio_to_floor"):
        assert row[key] > 0, key
    assert row["shipped_bytes"] > 10_000 and row["plain_bytes"] > 10_000
    assert results["aims"][0]["aim"].startswith("one-page Chinese invoice PDF")


def test_invoice_pdf_is_listed_by_the_bench_command(capsys):
    assert benchmarks.main(["--help"]) == 0
    assert "invoice-pdf" in capsys.readouterr().out
    with pytest.raises(SystemExit) as refused:  # argparse's error(): refused before anything runs
        benchmarks.main(["invoice-pdf", "--repeat", "0"])
    assert refused.value.code == 2
