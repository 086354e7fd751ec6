"""Hostile model bundles: each is its bundle's one sentence, and a models folder holding them still
lets the good bundles load (the viewer and the CLI discover bundles through find_bundles)."""
from __future__ import annotations

import hashlib
import json

import pytest

from inference import bundle as bundle_mod
from inference.bundle import BundleError, find_bundles, load_bundle
from tests.test_bundle import edit_json, load_error, make_translation_bundle


@pytest.fixture()
def good(tmp_path):
    return make_translation_bundle(tmp_path / "models" / "healthygan-phantom").path


def _nest(depth: int) -> str:
    return '{"name": ' + "[" * depth + "]" * depth + "}"


def test_deeply_nested_model_json(good):
    (good / "model.json").write_text(_nest(100_000))
    assert load_error(good) == "healthygan-phantom: model.json is nested too deeply to be a model description."


@pytest.mark.parametrize("name", ["gen\x00erator.onnx", "g" * 5000 + ".onnx", "a/" + "b" * 300 + ".onnx"],
                         ids=["nul", "5000-chars", "long-part"])
def test_network_file_names_the_system_refuses(good, name):
    edit_json(good, lambda d: d["networks"]["generator"].update(file=name))
    message = load_error(good)
    assert "field 'networks.generator.file' must be a file name of at most 255 characters" in message
    assert len(message) < 400


@pytest.mark.parametrize("change,field", [
    (lambda d: d["input"].update(resolution=65536), "input.resolution"),
    (lambda d: d["input"].update(resolution=1e100), "input.resolution"),
    (lambda d: d["input"].update(channels=100000), "input.channels"),
    (lambda d: d["input"].update(value_range=[-1e308, 1e308]), "input.value_range"),
    (lambda d: d["calibration"].update(threshold=-1e308), "calibration.threshold"),
    (lambda d: d["calibration"].update(youden_j=1e300), "calibration.youden_j"),
], ids=["resolution-65536", "resolution-1e100", "channels", "value-range", "threshold", "youden"])
def test_absurd_values_are_refused(good, change, field):
    edit_json(good, change)
    assert f"field '{field}' must be" in load_error(good)


def test_model_json_link_leaving_the_bundle_is_refused(good, tmp_path):
    outside = tmp_path / "elsewhere.json"
    outside.write_text((good / "model.json").read_text())
    (good / "model.json").unlink()
    (good / "model.json").symlink_to(outside)
    assert "model.json is a link to a file outside the bundle folder" in load_error(good)


def garbage_onnx(folder):
    """An ONNX file replaced by garbage, its sha256 updated to match: model.json validates."""
    onnx_file = folder / "generator.onnx"
    onnx_file.write_bytes(b"\x08\x07garbage, not a protobuf" * 10)
    edit_json(folder, lambda d: d["networks"]["generator"].update(
        sha256=hashlib.sha256(onnx_file.read_bytes()).hexdigest()))


def test_garbage_onnx_with_matching_sha256_is_the_bundles_sentence(good):
    from inference.runtime import bundle_session

    garbage_onnx(good)
    bundle = load_bundle(good)
    with pytest.raises(BundleError) as info:
        bundle_session(bundle, "generator", device="cpu")
    message = str(info.value)
    assert message.startswith("healthygan-phantom: networks.generator: generator.onnx is not an ONNX model")
    assert "\n" not in message


def test_a_models_folder_of_hostile_bundles_still_loads_the_good_one(tmp_path, monkeypatch):
    monkeypatch.setattr(bundle_mod, "user_models_dir", lambda: tmp_path / "user-models")
    monkeypatch.setattr(bundle_mod, "bundled_models_dir", lambda: tmp_path / "bundled-models")
    monkeypatch.delenv(bundle_mod.MODELS_ENV, raising=False)
    models = tmp_path / "extra"
    make_translation_bundle(models / "good-one", name="good-one")
    nested = make_translation_bundle(models / "nested", name="nested").path
    (nested / "model.json").write_text(_nest(100_000))
    nul = make_translation_bundle(models / "nul", name="nul").path
    edit_json(nul, lambda d: d["networks"]["generator"].update(file="a\x00b.onnx"))
    long_name = make_translation_bundle(models / "long", name="long").path
    edit_json(long_name, lambda d: d["networks"]["generator"].update(file="x" * 5000))
    bundles, errors = find_bundles([models])
    assert [b.name for b in bundles] == ["good-one"]
    assert sorted(str(e).split(":")[0] for e in errors) == ["long", "nested", "nul"]
    assert all("\n" not in str(e) and len(str(e)) < 400 for e in errors)


def test_cli_analyze_with_a_garbage_onnx_bundle_prints_the_sentence(good, tmp_path, capsys):
    from app.cli import main

    garbage_onnx(good)
    (tmp_path / "in").mkdir()
    rc = main(["analyze", str(tmp_path / "in"), "--method", "translation", "--model", str(good),
               "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2
    assert "Traceback" not in err and "is not an ONNX model ONNX Runtime can load" in err


def test_valid_bundle_still_round_trips(good):
    data = json.loads((good / "model.json").read_text())
    assert load_bundle(good).input.resolution == data["input"]["resolution"]
