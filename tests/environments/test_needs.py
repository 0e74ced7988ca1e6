"""What a model's environment installs, read from the model's files without loading it, and what it adds."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from legion.core.errors import ModelFormatError
from legion.environments import LegionSource, ModelNeeds, read_needs
from legion.environments.serving import NOT_FOR_SERVING, constraints_text, requirements_text, stage_source
from tests.support.pinned import PINNED_SIX

ROOT = Path(__file__).resolve().parents[2]


def test_a_legion_model_its_zip_and_its_package_need_the_same(pinned_six_model_dir: Path, tmp_path: Path) -> None:
    from legion.model.package import build_package

    expected = ModelNeeds(python=_minor_of(pinned_six_model_dir), requirements=(f"six=={PINNED_SIX}",))
    assert read_needs(pinned_six_model_dir) == expected
    zipped = Path(shutil.make_archive(str(tmp_path / "model"), "zip", pinned_six_model_dir))
    assert read_needs(zipped) == expected
    build_package(pinned_six_model_dir, tmp_path / "package")
    assert read_needs(tmp_path / "package") == expected


def _minor_of(model: Path) -> str:
    import yaml

    python = yaml.safe_load((model / "legion.model.yaml").read_text())["python"]
    return ".".join(str(python).split(".")[:2])


def mlflow_model(directory: Path, flavors: str, files: dict[str, str]) -> Path:
    directory.mkdir()
    (directory / "MLmodel").write_text(f"flavors:\n{textwrap.indent(flavors, '  ')}")
    for name, text in files.items():
        (directory / name).write_text(textwrap.dedent(text))
    return directory


def test_an_mlflow_model_needs_its_requirements_txt_and_python_env(tmp_path: Path) -> None:
    model = mlflow_model(tmp_path / "m", "python_function:\n  loader_module: mlflow.pyfunc.model\n", {
        "requirements.txt": "mlflow==2.12.1\n# a comment\ncloudpickle==3.0.0  # pinned\n\nnumpy>=1.26,<2 ; python_version >= '3.9'\n",
        "python_env.yaml": "python: 3.10.14\nbuild_dependencies: [pip]\ndependencies: [-r requirements.txt]\n",
        "conda.yaml": "dependencies:\n- python=3.9.1\n- pip:\n  - ignored==1.0\n",
    })  # fmt: skip
    assert read_needs(model) == ModelNeeds(
        python="3.10",
        requirements=("cloudpickle==3.0.0", "mlflow==2.12.1", "numpy>=1.26,<2 ; python_version >= '3.9'"),
    )


def test_without_requirements_txt_the_pip_part_of_conda_yaml_counts(tmp_path: Path) -> None:
    model = mlflow_model(tmp_path / "m", "python_function: {}\n", {
        "conda.yaml": "channels: [conda-forge]\ndependencies:\n- python=3.12.2\n- pip<=24\n- pip:\n  - mlflow==2.12.1\n  - pandas==2.2.2\n",
    })  # fmt: skip
    assert read_needs(model) == ModelNeeds(python="3.12", requirements=("mlflow==2.12.1", "pandas==2.2.2"))


def test_a_scikit_learn_model_does_not_need_mlflow(tmp_path: Path) -> None:
    # Legion unpickles a sklearn-flavored model itself, as the loader does: MLflow's pin is not installed
    model = mlflow_model(tmp_path / "m", "sklearn:\n  pickled_model: model.pkl\npython_function: {}\n", {
        "requirements.txt": "mlflow==2.12.1\nmlflow-skinny==2.12.1\nscikit-learn==1.4.2\nlegion==0.1.0\n",
    })  # fmt: skip
    assert read_needs(model).requirements == ("scikit-learn==1.4.2",)  # nor Legion: the environment gets this one


@pytest.mark.parametrize(
    "line",
    ["--index-url http://elsewhere.invalid/simple", "-e /some/path", "-r other.txt",
     "six @ https://elsewhere.invalid/six.whl", "./local/package", "six==1.16.0 --hash=sha256:00"],
)  # fmt: skip
def test_a_requirement_line_that_is_not_a_requirement_by_name_is_refused(tmp_path: Path, line: str) -> None:
    model = mlflow_model(tmp_path / "m", "python_function: {}\n", {"requirements.txt": f"six==1.16.0\n{line}\n"})
    with pytest.raises(ModelFormatError) as caught:
        read_needs(model)
    assert "only requirements by name" in caught.value.detail
    assert caught.value.problems == [line]


def test_a_path_that_holds_no_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelFormatError, match="neither a Legion model"):
        read_needs(tmp_path)


def test_the_environment_installs_the_models_pins_over_legions_serving_requirements() -> None:
    source = LegionSource.of_running()
    needs = ModelNeeds(python="3.11", requirements=("numpy==1.26.4", "six==1.16.0"))
    requirements = requirements_text(needs).splitlines()
    assert requirements[:2] == ["numpy==1.26.4", "six==1.16.0"]
    named = {line.split(">")[0].split("=")[0].split(";")[0].strip() for line in requirements[2:]}
    assert "uvicorn" in named and "pydantic" in named
    assert not named & NOT_FOR_SERVING  # the management API's own needs stay out
    constraints = constraints_text(needs, source)
    assert "numpy==" not in constraints  # the model's numpy wins over this checkout's pin
    assert "uvicorn==" in constraints


def test_legions_identity_follows_its_source(tmp_path: Path) -> None:
    copy = tmp_path / "checkout"
    stage_source(LegionSource.of_running(), copy)
    (copy / "constraints.txt").write_text("")
    staged = LegionSource(copy)
    assert staged.identity() == LegionSource.of_running().identity()  # what is staged is what is hashed
    (copy / "legion" / "__pycache__").mkdir(exist_ok=True)
    (copy / "legion" / "__pycache__" / "x.pyc").write_bytes(b"cache")
    assert staged.identity() == LegionSource.of_running().identity()
    (copy / "legion" / "core" / "ids.py").write_text((copy / "legion" / "core" / "ids.py").read_text() + "\n# edit\n")
    assert staged.identity() != LegionSource.of_running().identity()


def test_the_checkout_is_not_written_by_staging(tmp_path: Path) -> None:
    stage_source(LegionSource(ROOT), tmp_path / "src")
    assert (tmp_path / "src" / "pyproject.toml").is_file() and (tmp_path / "src" / "legion" / "py.typed").is_file()
    assert not list((tmp_path / "src").rglob("__pycache__"))
