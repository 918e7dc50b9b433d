"""The library says things through return values and logging, never by printing: the store's
first run records its interpreter and says so once (the CLI prints it as `codalite: ...`)."""

import logging
import os
import sys

import pytest

from codalite import Store

pytestmark = pytest.mark.fast


def test_the_first_run_records_the_interpreter_and_logs_it_once(tmp_path, caplog, capsys):
    store = Store.init(tmp_path)
    path_env = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    with caplog.at_level(logging.INFO, logger="codalite"):
        assert store.interpreter(path_env) == store.interpreter(path_env, record=True) == store.recorded_interpreter()
        store.interpreter(path_env, record=True)  # recorded already: said once
    notes = [r for r in caplog.records if r.name == "codalite"]
    assert len(notes) == 1 and notes[0].levelno == logging.WARNING
    assert f"runs use {store.recorded_interpreter()} from now on" in notes[0].getMessage()
    assert capsys.readouterr() == ("", "")  # nothing printed by the library itself
    store.close()
