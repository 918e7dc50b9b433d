from codalite.worksheets.parse import BUNDLE, DIRECTIVE, MARKUP, WORKSHEET, parse


def test_line_types_and_numbers():
    text = ("## Title\n"
            "// a comment\n"
            "[dataset SNLI]{0xda98c1500d044b32820173c162f63656}\n"
            "  {train^2}  \n"
            "[worksheet other]{{other}}\n"
            "% add '#epochs' /args.json:n_epochs %d\n"
            "\n"
            "plain $x$ text\n")
    items = parse(text)
    assert [i.type for i in items] == [MARKUP, DIRECTIVE, BUNDLE, BUNDLE, WORKSHEET, DIRECTIVE, MARKUP, MARKUP]
    assert [i.line for i in items] == list(range(1, 9))
    assert items[1].is_comment and items[1].tokens() == []
    assert items[2].value == "0xda98c1500d044b32820173c162f63656"
    assert items[3].value == "train^2"
    assert items[4].value == "other"
    assert items[5].tokens() == ["add", "#epochs", "/args.json:n_epochs", "%d"]
    assert items[6].value == ""


def test_post_processor_chain_stays_one_token():
    (item,) = parse("% add CREATE created \"date | [0:5]\"")
    assert item.tokens() == ["add", "CREATE", "created", "date | [0:5]"]
