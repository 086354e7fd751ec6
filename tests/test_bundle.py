"""Model bundles: write -> load round trip, one clear sentence per broken field, discovery."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from inference import bundle as bundle_mod
from inference.bundle import (
    BundleError,
    Calibration,
    InputSpec,
    find_bundles,
    load_bundle,
    resolve_bundle,
    write_bundle,
)

PROVENANCE = {"command": "mammolens train translation --iterations 10", "seed": 7, "iterations": 10,
              "code_revision": "abc1234", "date": "2026-11-21", "device": "cpu", "training_data": "phantom n=8"}


def conv_model(path: Path, *, batch=None, size=None, channels: int = 1, in_name="x", out_name="y") -> Path:
    """A tiny 1x1 Conv, y = 2x + 0.5, on (N, C, H, W); None dims are dynamic."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    dims = [batch if batch else "N", channels, size if size else "H", size if size else "W"]
    weight = numpy_helper.from_array(np.full((1, channels, 1, 1), 2.0, np.float32), "w")
    bias = numpy_helper.from_array(np.array([0.5], np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("Conv", [in_name, "w", "b"], [out_name])], "tiny",
        [helper.make_tensor_value_info(in_name, TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, [dims[0], 1, dims[2], dims[3]])],
        initializer=[weight, bias])
    # IR 10 / opset 17: loadable by every onnxruntime this project supports (onnx 1.23 defaults to IR 14)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, os.fspath(path))
    return path


def make_translation_bundle(folder: Path, *, name="healthygan-phantom", size=16, resolution=16, **overrides):
    source = conv_model(folder.parent / f"{folder.name}-src" / "net.onnx", size=size)
    kwargs = dict(name=name, version="1.0", method="translation", networks={"generator": source},
                  input={"resolution": resolution, "channels": 1, "value_range": [-1, 1]},
                  parameters={"score": "mean"},
                  calibration={"score": "mean |x - B'| in the breast", "threshold": 0.25, "auc": 0.8,
                               "youden_j": 0.5, "data": "phantom test split", "n_normal": 4, "n_abnormal": 3},
                  provenance=PROVENANCE, description="test bundle")
    kwargs.update(overrides)
    return write_bundle(folder, **kwargs)


@pytest.fixture()
def good(tmp_path) -> Path:
    return make_translation_bundle(tmp_path / "models" / "healthygan-phantom").path


def edit_json(folder: Path, change) -> None:
    path = folder / "model.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))  # json.dumps writes NaN / Infinity, as a hand edit could


def load_error(folder: Path) -> str:
    with pytest.raises(BundleError) as info:
        load_bundle(folder)
    message = str(info.value)
    assert "\n" not in message and message.endswith(".")  # one sentence
    assert message.startswith(f"{folder.name}: ")  # names the bundle folder
    return message


# -------------------------------------------------------------------------------------------------
# round trip


def test_round_trip(tmp_path):
    folder = tmp_path / "models" / "healthygan-phantom"
    written = make_translation_bundle(folder)
    loaded = load_bundle(folder)
    assert written == loaded
    assert loaded.name == "healthygan-phantom" and loaded.version == "1.0" and loaded.method == "translation"
    assert loaded.description == "test bundle"
    generator = loaded.network("generator")
    assert generator.path == (folder / "generator.onnx").resolve()  # copied in, named by role
    assert generator.inputs == ("x",) and generator.outputs == ("y",)  # read through a CPU session
    assert generator.sha256 == bundle_mod.sha256_of(generator.path)
    assert loaded.input == InputSpec(16, 1, (-1.0, 1.0))
    assert loaded.calibration.threshold == 0.25 and loaded.calibration.auc == 0.8
    assert loaded.calibration.n_abnormal == 3
    assert loaded.provenance == PROVENANCE
    assert loaded.to_dict() == json.loads((folder / "model.json").read_text())
    assert load_bundle(folder / "model.json") == loaded  # the file path works too
    assert {loaded: 1}[written] == 1  # hashable (session caches key on bundles)


def test_projection_bundle_with_given_names_and_no_calibration(tmp_path):
    src = tmp_path / "src"
    nets = {role: {"path": conv_model(src / f"{role}.onnx", size=32), "inputs": ["x"], "outputs": ["y"]}
            for role in ("mapping", "synthesis", "project_step", "encoder")}
    bundle = write_bundle(tmp_path / "stylegan", name="stylegan-phantom", version="0.1", method="projection",
                          networks=nets, input=InputSpec(32), parameters={"seeds": np.int64(9), "w_dim": 512},
                          calibration=None, provenance=PROVENANCE)
    assert sorted(bundle.networks) == ["encoder", "mapping", "project_step", "synthesis"]
    assert bundle.calibration is None
    assert bundle.parameters == {"seeds": 9, "w_dim": 512}  # numpy scalars stored as JSON numbers


def test_calibration_from_evaluation_round_trips(tmp_path):
    from inference.metrics import evaluate

    ev = evaluate([0, 0, 0, 0, 1, 1, 1], [0.1, 0.2, 0.4, 0.6, 0.4, 0.7, 0.9],
                  classes=["normal"] * 4 + ["mass", "calcification", "mass"])
    cal = Calibration.from_evaluation(ev, score="mean difference", data="phantom test split")
    bundle = make_translation_bundle(tmp_path / "b", calibration=cal)
    assert bundle.calibration == cal
    assert bundle.calibration.threshold == pytest.approx(0.7)
    assert bundle.calibration.per_class["mass"]["n"] == 2


def test_files_inside_the_folder_are_kept_in_place(tmp_path):
    folder = tmp_path / "b"
    conv_model(folder / "nets" / "g.onnx", size=16)
    bundle = make_translation_bundle(folder, networks={"generator": folder / "nets" / "g.onnx"})
    assert bundle.to_dict()["networks"]["generator"]["file"] == "nets/g.onnx"
    assert not (folder / "generator.onnx").exists()


# -------------------------------------------------------------------------------------------------
# broken fields: one sentence each


BROKEN = [
    ("method", lambda d: d.update(method="gan"),
     "model.json field 'method' must be one of translation, projection, inpainting, synthesis, not 'gan'."),
    ("missing-role", lambda d: d.update(method="inpainting"),
     "model.json field 'networks' lacks the 'critic' network an inpainting bundle requires."),
    ("unknown-role", lambda d: d["networks"].update(critic=d["networks"]["generator"]),
     "model.json field 'networks' has a 'critic' network, which a translation bundle does not use (it uses generator)."),
    ("resolution", lambda d: d["input"].update(resolution="abc"),
     "healthygan-phantom: model.json field 'input.resolution' must be a positive integer, not 'abc'."),
    ("resolution-zero", lambda d: d["input"].update(resolution=0),
     "field 'input.resolution' must be a positive integer, not 0."),
    ("resolution-bool", lambda d: d["input"].update(resolution=True),
     "field 'input.resolution' must be a positive integer, not True."),
    ("value-range", lambda d: d["input"].update(value_range=[1, -1]),
     "field 'input.value_range' must be two finite numbers [lo, hi] with lo < hi, not [1, -1]."),
    ("laterality", lambda d: d["input"].update(laterality="none"),
     "field 'input.laterality' must be one of flip_right_to_left, not 'none'."),
    ("missing-input-field", lambda d: d["input"].pop("channels"),
     "model.json is missing the field 'input.channels'."),
    ("threshold-nan", lambda d: d["calibration"].update(threshold=float("nan")),
     "field 'calibration.threshold' must be a finite number, not nan."),
    ("auc-inf", lambda d: d["calibration"].update(auc=float("inf")),
     "field 'calibration.auc' must be a finite number, not inf."),
    ("auc-range", lambda d: d["calibration"].update(auc=1.5),
     "field 'calibration.auc' must be a number between 0 and 1, not 1.5."),
    ("n-normal", lambda d: d["calibration"].update(n_normal=-1),
     "field 'calibration.n_normal' must be a non-negative integer, not -1."),
    ("format-version", lambda d: d.update(format_version=2),
     "model.json format_version 2 is not supported (this mammolens reads 1)."),
    ("provenance-seed", lambda d: d["provenance"].pop("seed"),
     "model.json is missing the field 'provenance.seed'."),
    ("typo", lambda d: d.update(calibraton=d.pop("calibration")),
     "model.json has an unknown field 'calibraton' in its top level"),
    ("escaping-file", lambda d: d["networks"]["generator"].update(file="../elsewhere.onnx"),
     "field 'networks.generator.file' must be a path inside the bundle folder, not '../elsewhere.onnx'."),
    ("sha-format", lambda d: d["networks"]["generator"].update(sha256="zz"),
     "field 'networks.generator.sha256' must be 64 hexadecimal digits, not 'zz'."),
    ("names", lambda d: d["networks"]["generator"].update(inputs=[]),
     "field 'networks.generator.inputs' must be a non-empty list of distinct tensor names, not []."),
    ("name", lambda d: d.update(name=""), "field 'name' must be a non-empty string, not ''."),
]


@pytest.mark.parametrize("change,expected", [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN])
def test_broken_field_gives_its_sentence(good, change, expected):
    edit_json(good, change)
    assert expected in load_error(good)


def test_bad_json(good):
    (good / "model.json").write_text('{"name": "x",\n "version": }')
    assert load_error(good) == "healthygan-phantom: model.json is not valid JSON (Expecting value at line 2, column 13)."


def test_not_a_bundle(tmp_path):
    (tmp_path / "empty").mkdir()
    assert "no model.json" in load_error(tmp_path / "empty")


def test_sha256_mismatch_after_editing_the_onnx_file(good):
    onnx_file = good / "generator.onnx"
    data = bytearray(onnx_file.read_bytes())
    data[-1] ^= 0xFF  # same size, one byte changed
    onnx_file.write_bytes(bytes(data))
    assert load_error(good) == ("healthygan-phantom: networks.generator: generator.onnx does not match its sha256 "
                                "(file changed or corrupt).")


def test_missing_network_file(good):
    (good / "generator.onnx").unlink()
    assert load_error(good) == "healthygan-phantom: networks.generator: file generator.onnx does not exist."


def test_resolution_disagreeing_with_the_onnx_input_is_refused_at_write(tmp_path):
    with pytest.raises(BundleError) as info:
        make_translation_bundle(tmp_path / "hg", size=256, resolution=128)
    assert str(info.value) == "hg: generator.onnx takes 256 x 256 inputs but model.json says input.resolution 128."
    assert not (tmp_path / "hg" / "model.json").exists()  # nothing half-valid left behind


def test_resolution_disagreeing_with_the_onnx_input_is_refused_at_session(tmp_path):
    from inference.runtime import bundle_session

    net = {"path": conv_model(tmp_path / "src" / "g.onnx", size=256), "inputs": ["x"], "outputs": ["y"]}
    bundle = make_translation_bundle(tmp_path / "hg", resolution=128, networks={"generator": net})  # names given: no check
    with pytest.raises(BundleError, match=r"^hg: generator.onnx takes 256 x 256 inputs but model.json says "
                                          r"input.resolution 128\.$"):
        bundle_session(bundle, "generator", device="cpu")


def test_channels_and_tensor_names_checked_at_session(tmp_path):
    from inference.runtime import bundle_session

    net = {"path": conv_model(tmp_path / "src" / "g.onnx", size=16, channels=3), "inputs": ["x"], "outputs": ["y"]}
    bundle = make_translation_bundle(tmp_path / "rgb", networks={"generator": net})
    with pytest.raises(BundleError, match="takes 3-channel inputs but model.json says input.channels 1"):
        bundle_session(bundle, "generator", device="cpu")

    net = {"path": conv_model(tmp_path / "src2" / "g.onnx", size=16), "inputs": ["image"], "outputs": ["y"]}
    bundle = make_translation_bundle(tmp_path / "names", networks={"generator": net})
    with pytest.raises(BundleError, match=r"networks.generator.inputs lists \['image'\] but generator.onnx has \['x'\]"):
        bundle_session(bundle, "generator", device="cpu")


def test_inpainting_checks_the_window_size_not_the_image_resolution(tmp_path):
    src = tmp_path / "src"
    nets = {"generator": conv_model(src / "g.onnx", size=32), "critic": conv_model(src / "c.onnx", size=32)}
    bundle = write_bundle(tmp_path / "inpaint", name="inpaint", version="1", method="inpainting", networks=nets,
                          input={"resolution": 128, "channels": 1, "value_range": [0, 1]},
                          parameters={"fov": 32, "mask": 16, "stride": 8}, provenance=PROVENANCE)
    assert bundle.expected_size("critic") == (32, "parameters.fov")
    with pytest.raises(BundleError, match="takes 32 x 32 inputs but model.json says parameters.fov 64"):
        write_bundle(tmp_path / "inpaint2", name="inpaint", version="1", method="inpainting", networks=nets,
                     input={"resolution": 128, "channels": 1, "value_range": [0, 1]},
                     parameters={"fov": 64}, provenance=PROVENANCE)


def test_unknown_role_asked_of_a_bundle(good):
    with pytest.raises(BundleError, match="has no 'critic' network"):
        load_bundle(good).network("critic")


# -------------------------------------------------------------------------------------------------
# discovery


@pytest.fixture()
def isolated_dirs(tmp_path, monkeypatch):
    """No user or bundled models from this machine leak into discovery tests."""
    monkeypatch.setattr(bundle_mod, "user_models_dir", lambda: tmp_path / "user-models")
    monkeypatch.setattr(bundle_mod, "bundled_models_dir", lambda: tmp_path / "bundled-models")
    monkeypatch.delenv(bundle_mod.MODELS_ENV, raising=False)
    return tmp_path


def test_default_dirs():
    assert bundle_mod.user_models_dir().parts[-2:] == ("mammolens", "models")
    assert bundle_mod.bundled_models_dir().parts[-2:] == ("resources", "models")


def test_find_bundles_reports_invalid_ones_without_raising(isolated_dirs):
    models = isolated_dirs / "extra"
    make_translation_bundle(models / "good-one", name="good-one")
    broken = make_translation_bundle(models / "broken", name="broken").path
    (broken / "model.json").write_text("{")
    (models / "not-a-bundle").mkdir()  # folders without model.json are not bundles: skipped silently

    bundles, errors = find_bundles([models, isolated_dirs / "missing"])
    assert [b.name for b in bundles] == ["good-one"]
    messages = sorted(str(e) for e in errors)
    assert len(messages) == 2
    assert messages[0].startswith("broken: model.json is not valid JSON")
    assert "missing" in messages[1] and "does not exist" in messages[1]


def test_find_bundles_via_env_var_and_user_dir(isolated_dirs, monkeypatch):
    a, b = isolated_dirs / "a", isolated_dirs / "b"
    make_translation_bundle(a / "alpha", name="alpha")
    make_translation_bundle(b / "beta", name="beta")
    make_translation_bundle(isolated_dirs / "user-models" / "gamma", name="gamma")
    monkeypatch.setenv(bundle_mod.MODELS_ENV, os.pathsep.join([str(a), str(b)]))
    bundles, errors = find_bundles()
    assert [x.name for x in bundles] == ["alpha", "beta", "gamma"] and errors == []
    # a folder given twice is loaded once; a bundle folder itself may be named
    bundles, _ = find_bundles([a, a / "alpha"])
    assert [x.name for x in bundles] == ["alpha", "beta", "gamma"]


def test_resolve_bundle(isolated_dirs):
    models = isolated_dirs / "extra"
    first = make_translation_bundle(models / "hg", name="hg")
    assert resolve_bundle(first.path) == first  # explicit path
    assert resolve_bundle(str(first.path)) == first
    assert resolve_bundle("hg", extra_dirs=[models]) == first  # by name
    assert resolve_bundle(method="translation", extra_dirs=[models]) == first  # first of the method
    with pytest.raises(BundleError, match="No model bundle named 'nope'.*found: hg"):
        resolve_bundle("nope", extra_dirs=[models])
    with pytest.raises(BundleError, match="No inpainting model bundle found"):
        resolve_bundle(method="inpainting", extra_dirs=[models])
    with pytest.raises(BundleError, match="is a translation bundle, but a projection bundle is needed"):
        resolve_bundle("hg", "projection", extra_dirs=[models])
    (first.path / "model.json").write_text("[]")
    with pytest.raises(BundleError, match="^hg: model.json must hold a JSON object"):
        resolve_bundle("hg", extra_dirs=[models])  # a broken bundle of that name says why
