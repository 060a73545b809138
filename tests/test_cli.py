import json

import pytest

from reprolab import load_program
from reprolab.cli import main


def test_models_json(capsys):
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["models"]
    assert {"name": "efficientnet_lite0", "source": "offline", "input_size": 224} in rows


def test_top1_json_on_heldout(capsys, data_dir):
    assert main(["top1", "efficientnet_lite0", "--split", "heldout", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n"] == 250 and out["top1"] > 0.8


@pytest.mark.parametrize("argv, match", [
    (["top1", "nope"], "unknown model 'nope'"),
    (["top1", "efficientnet_lite0", "--images", "/no/such/dir"], "image folder not found at /no/such/dir"),
])
def test_errors_are_one_clear_line(capsys, argv, match):
    assert main(argv) == 2
    assert match in capsys.readouterr().err


def test_reprogram_squares_keep_their_drawn_size(tmp_path, capsys):
    out = tmp_path / "squares.safetensors"
    assert main(["reprogram", "--task", "squares", "--mapping", "first", "--steps", "2", "--batch-size", "4",
                 "--size", "64", "--out", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 2000 and 0 <= result["heldout_accuracy"] <= 1
    program, meta = load_program(out)
    assert program.image_size == 36 and meta["task"] == "squares"


def test_cli_defaults_are_the_librarys():
    """The parser reads its defaults from the functions' signatures: no copy to drift."""
    import inspect

    from reprolab import cli, datafree, uap
    from reprolab.reprogramming import reprogram

    parser = cli.build_parser()
    for argv, func, names in [(["uap", "--out", "u.safetensors"], uap.sgd_uap, ["eps", "steps", "batch_size", "loss"]),
                              (["reprogram", "--out", "r.safetensors"], reprogram, ["steps", "batch_size", "lr", "m"]),
                              (["datafree", "--out", "d.safetensors"], datafree.datafree_uap, ["eps", "steps", "stat"]),
                              (["gallery", "--out", "g/"], uap.targeted_uap, ["eps", "steps", "batch_size"])]:
        args = vars(parser.parse_args(argv))
        for name in names:
            assert args[name] == inspect.signature(func).parameters[name].default, (argv[0], name)
