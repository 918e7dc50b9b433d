"""`codalite search` keywords compiled to a Query (search.compile_search), and the compiled SQL run
on a real store's SQLite (uploads only: no worker)."""

import pytest

from codalite import Store
from codalite.errors import UsageError
from codalite.search import DEFAULT_LIMIT, MAX_KEYWORDS, Order, Query, Sum, compile_search, parse_date, search

pytestmark = pytest.mark.fast


def test_no_keywords_is_everything_newest_first_ten_at_a_time():
    q = compile_search([])
    assert q == Query() and q.sql_where() == "1" and q.limit == DEFAULT_LIMIT and q.order is None


def test_words_columns_lists_and_patterns():
    q = compile_search(["mnist", "state=ready", "type=run,make", "name=train%", "=lr"])
    assert q.params[:2] == ["%mnist%", "%mnist%"]
    assert "(uuid LIKE ? ESCAPE '\\' OR name LIKE ? ESCAPE '\\')" in q.where[0]  # \% and \_ are literal
    assert q.where[1] == "state = ? COLLATE NOCASE" and "ready" in q.params
    assert q.where[2] == "bundle_type COLLATE NOCASE IN (?,?)" and ["run", "make"] == q.params[3:5]
    assert q.where[3] == "name LIKE ? ESCAPE '\\'" and "train%" in q.params
    assert q.params[-3:] == ["%lr%"] * 3  # =value: uuid, command or any metadata value
    assert compile_search(["x.*y"]).params == ["%x%y%", "%x%y%"]  # .* is a wildcard


def test_sort_sum_count_limit_and_format_are_named():
    q = compile_search(["id=.sort-", ".limit=3", ".offset=2"])
    assert isinstance(q.order, Order) and q.order.sql.startswith("(id * 1) DESC") and q.order.params == []
    assert (q.limit, q.offset) == (3, 2)
    q = compile_search(["lr=.sort"])
    assert q.order.params.count("lr") == 2 and q.where  # only bundles that have the key (in any case)
    q = compile_search(["id=.sum", ".format=size"])
    assert q.sum == Sum("(id * 1)", [], None) and q.format == "size"  # a column: one term per bundle
    q = compile_search(["size=.sum"])  # a metadata key (size = data_size): one term per value
    assert isinstance(q.sum, Sum) and q.sum.path == '$."data_size"'
    q = compile_search([".count"])
    assert q.count and q.limit is None
    assert compile_search([".last"]).order == compile_search(["id=.sort-"]).order


@pytest.mark.parametrize("keywords, message", [
    ([".count", "size=.sum"], ".count and =.sum cannot be combined"),
    (["x"] * (MAX_KEYWORDS + 1), f"use at most {MAX_KEYWORDS}"),
    ([".limit=-1"], ".limit must be between 0 and"),
    ([".limit=ten"], ".limit needs a number"),
    ([".nope"], "unknown option '.nope'"),
    (["a-b=1"], "invalid field in 'a-b=1'"),
    (["owner=me"], "a codalite store has one user"),
    ([".before=yesterday"], "Unable to parse datetime"),
    ([".before=2024,2025"], "takes one date"),
    (["dependency=train"], "'train' is not a full uuid"),  # a name needs a store to resolve it
    (["dependency=.sort"], "sorting or summing by dependency is not supported"),
])
def test_mistakes_are_one_line(keywords, message):
    with pytest.raises(UsageError, match=None) as e:
        compile_search(keywords)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_dates():
    assert parse_date("2024") == parse_date("2024-01") == parse_date("2024-01-01")
    assert parse_date("2024-01-01T00:01") - parse_date("2024-01-01") == 60


def test_the_compiled_sql_on_a_real_store(tmp_path):
    store = Store.init(tmp_path / "s")
    for name, text in [("alpha", "1"), ("beta", "22"), ("alphabet", "333")]:
        (tmp_path / name).write_text(text)
        store.upload([str(tmp_path / name)], name=name, tags=["t1", name])
    names = lambda kws: [b.name for b in search(store, kws)]  # noqa: E731
    assert names([]) == ["alphabet", "beta", "alpha"]
    assert names(["alpha"]) == ["alphabet", "alpha"]
    assert names(["name=ALPHA"]) == ["alpha"]  # case-insensitive, as CodaLab's MySQL
    assert names(["tags=beta"]) == ["beta"]  # each element of a list is a value
    assert names(["size=.sort"]) == ["alpha", "beta", "alphabet"]
    assert names([".limit=1", ".offset=1"]) == ["beta"]
    assert search(store, [".count"]) == 3 and search(store, ["tags=t1", ".count"]) == 3
    assert search(store, ["size=.sum"]) == 6.0  # summed as MySQL does: a float
    assert names(["dependency=alpha"]) == []  # resolved through the store
    store.close()
