import logging

from bench.common import fmt, parse_results, show_data_progress, table


def test_result_lines_parse_and_nothing_else_does():
    text = "| a | b |\nRESULT lenet_speedup=2.31\nnoise RESULT x=1\nRESULT budget_acc=0.7712\n"
    assert parse_results(text) == {"lenet_speedup": 2.31, "budget_acc": 0.7712}


def test_table_is_markdown_with_aligned_columns():
    lines = table(["model", "images/s"], [["lenet", 1234.5], ["default", 0.25]]).splitlines()
    assert lines[0].startswith("| model ") and lines[1].startswith("|---")
    assert len({len(line) for line in lines}) == 1
    assert "1,234" in lines[2] or "1,235" in lines[2]
    assert fmt(0.25) == "0.25"


def test_show_data_progress_puts_trainables_log_lines_on_stderr(capsys, monkeypatch):
    logger = logging.getLogger("cnn_tune")
    monkeypatch.setattr(logger, "handlers", [])  # restored afterwards, as is the level
    monkeypatch.setattr(logger, "level", logger.level)
    show_data_progress()
    show_data_progress()  # once is enough: no second handler
    logging.getLogger("cnn_tune.cache").info("cnn-tune data: cached mnist5k in /x.pt (0.1 s)")
    assert capsys.readouterr().err == "cnn-tune data: cached mnist5k in /x.pt (0.1 s)\n"
