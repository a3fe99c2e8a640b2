from bench import list as list_bench
from bench.common import parse_results


def test_list_benchmark_times_every_experiment(tmp_path, capsys):
    assert list_bench.main(["--experiments", "3", "--out", str(tmp_path)]) == 0
    results = parse_results(capsys.readouterr().out)
    assert set(results) == {"list_ms", "list_command_s"}
    assert all(v > 0 for v in results.values())
