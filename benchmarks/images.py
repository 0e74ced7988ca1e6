"""How long `legion model image` takes on this machine, and how big the census image is.

    .venv/bin/python benchmarks/images.py            # about 3 min with the base cached, 5 min without

Rows: the base image (loaded from its cache, or built with debootstrap when there is none), a cold build of the
census image into an empty private storage (the venv layer downloads and installs every requirement), a second model
version on a warm cache (only the model layer is rebuilt), and the image's size. The storage lives in
``benchmarks/.work/images`` and is removed at the end; the base cache is the checkout's ``.cache/images``. Saved as
JSON in ``benchmarks/results/images-<time>.json``.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from benchmarks._harness import RESULTS_DIR, WORK_DIR, machine_info  # noqa: E402
from legion.images import ContainerTools, ImageRequest, ImageSettings, build_model_image  # noqa: E402
from legion.images.base import ensure_base  # noqa: E402
from legion.model.manifest import MANIFEST_NAME  # noqa: E402


def main() -> None:
    from examples.census_income import train

    work = WORK_DIR / "images"
    shutil.rmtree(work, ignore_errors=True)
    model = train.main(["--output", str(work / "census" / "model")])
    settings = ImageSettings(storage_dir=work / "storage", cache_dir=ROOT / ".cache" / "images")
    tools = ContainerTools(settings)
    rows: dict[str, float] = {}
    try:
        cached = any(settings.cache_dir.glob("legion-base-*.oci.tar"))
        started = time.perf_counter()
        ensure_base(tools, settings)
        rows["base image (loaded from cache)" if cached else "base image (debootstrap)"] = time.perf_counter() - started
        started = time.perf_counter()
        first = build_model_image(tools, settings, ImageRequest(model, "localhost/census-income:1.0"))
        rows["census image, cold (empty layer cache)"] = time.perf_counter() - started
        second_model = work / "census-1.1" / "model"
        shutil.copytree(model, second_model)
        manifest = second_model / MANIFEST_NAME
        manifest.write_text(manifest.read_text().replace("version: '1.0'", "version: '1.1'", 1))
        started = time.perf_counter()
        build_model_image(tools, settings, ImageRequest(second_model, "localhost/census-income:1.1"))
        rows["census 1.1, warm (only the model layer)"] = time.perf_counter() - started
        size = int(json.loads(tools.podman("image", "inspect", first.image_id).stdout)[0]["Size"])
    finally:
        for image_id in tools.podman("images", "--all", "--quiet", "--no-trunc", check=False).stdout.split():
            tools.podman("rmi", "--force", image_id, check=False)
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'what':45} {'seconds':>8}")
    for what, seconds in rows.items():
        print(f"{what:45} {seconds:8.1f}")
    print(f"{'census image size (MB)':45} {size / 1e6:8.0f}")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    RESULTS_DIR.mkdir(exist_ok=True)
    result = {"seconds": rows, "census_image_bytes": size, "machine": machine_info()}
    (RESULTS_DIR / f"images-{stamp}.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
