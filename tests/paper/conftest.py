import pytest

from codalite import Store


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.delenv("CODALITE_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    s = Store.init(tmp_path)
    yield s
    s.close()
